"""The base of every row of the state store (see ``caravan.fsm.structs``)."""
from __future__ import annotations

import msgspec


class Record(msgspec.Struct, kw_only=True, gc=False):
    """Base of every row: keyword-only construction, all fields encoded (Nomad emits
    every field, with ``null`` for nil slices and maps).

    ``gc=False``: rows never form reference cycles, so the cyclic garbage collector
    need not track them; with tens of thousands of rows in the state, its full
    passes otherwise cost more than the rest of a registration."""
