"""The replicated state machine: log entry types, the state store and ``apply``.

Pure: no I/O, no clock, no randomness, no imports from ``server/`` or ``scheduler/``.
"""
