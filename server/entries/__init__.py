"""Log-entry builders: what a write request becomes, with no HTTP in sight.

The gateway's handlers (``server.http``) parse a request, call these and submit the
entry; the deterministic simulation (``tests/sim``) calls the same builders. Every
value that is not a pure function of the state (ids, wall-clock times) is decided
here, before the entry is submitted. Bad input raises ``server.errors.ApiError``.
"""
