"""Job specifications as Nomad 1.x treats them on register: defaults (``canonicalize``)
and the checks with Nomad's exact messages (``validate``).

Both run in the HTTP gateway on a freshly decoded request, before anything is written
to the log; stored rows are never re-canonicalized.
"""
