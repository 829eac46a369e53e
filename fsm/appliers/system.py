"""Appliers of the cluster's own entries: no-op, leader epoch and garbage collection."""
from __future__ import annotations

from caravan.fsm import entries as e
from caravan.fsm import gc
from caravan.fsm import schema as t
from caravan.fsm.appliers import Result
from caravan.fsm.jobs import Rejected
from caravan.fsm.store import Txn
from caravan.fsm.structs import LeaderEpoch


def noop(txn: Txn, body: e.Noop) -> Result:
    return {}


def batch_inside(txn: Txn, body: e.Batch) -> Result:
    raise Rejected(400, "a batch may not hold a batch")   # apply() unpacks batches


def leader_epoch(txn: Txn, body: e.LeaderEpochStart) -> Result:
    old = txn.get(t.LEADERSHIP, "leader")
    txn.put(t.LEADERSHIP, LeaderEpoch(Index=txn.index, ModifyIndex=txn.index,
                                      CreateIndex=old.CreateIndex if old else txn.index))
    return {"Epoch": txn.index}


def core_gc(txn: Txn, body: e.CoreGC) -> Result:
    return gc.collect(txn, body)
