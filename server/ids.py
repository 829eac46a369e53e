"""Identifiers decided by the gateway before a write enters the log.

Evaluation ids have Nomad's UUID form. They must be unique, not secret, so they come
from a per-process generator seeded by the OS instead of one ``os.urandom`` call per
id (which cost 7% of a leader's CPU under load).
"""
from __future__ import annotations

import itertools
import os
import random

from caravan.fsm.ids import uuid4_from

_rng = random.Random(os.urandom(32))


def uuid4_str() -> str:
    return uuid4_from(_rng)


def short_hex(n_bytes: int = 4) -> str:
    return f"{_rng.getrandbits(8 * n_bytes):0{2 * n_bytes}x}"


# Request ids only need to be unique across the cluster's servers: a random per-process
# prefix and a counter.
def _request_id_source():
    return (f"{short_hex(8)}-{n:x}" for n in itertools.count(1))


_request_ids = _request_id_source()


def request_id() -> str:
    return next(_request_ids)


def reseed(seed) -> None:
    """Restart every id sequence from ``seed``: the deterministic simulation calls this
    so that a run replays with the same ids. Never called by a server."""
    global _request_ids
    _rng.seed(seed)
    _request_ids = _request_id_source()


def _reseed_after_fork() -> None:
    reseed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed_after_fork)
