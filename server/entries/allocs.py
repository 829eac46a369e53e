"""The log entry of ``/v1/allocation/:id/stop`` (Nomad's ``Alloc.Stop``): the
allocation marked to migrate and the ``alloc-stop`` eval that acts on it."""
from __future__ import annotations

import time

from caravan.fsm import entries as e
from caravan.fsm.structs import DesiredTransition, Evaluation
from caravan.server import ids


def stop_entry(alloc, no_shutdown_delay: bool, now_ns: int | None = None) -> e.AllocDesiredTransition:
    now = time.time_ns() if now_ns is None else now_ns
    job = alloc.Job
    ev = Evaluation(ID=ids.uuid4_str(), Namespace=alloc.Namespace,
                    Priority=(job.Priority if job else None) or 50,
                    Type=(job.Type if job else None) or "service", TriggeredBy="alloc-stop",
                    JobID=alloc.JobID, JobModifyIndex=job.ModifyIndex if job else 0,
                    Status="pending", CreateTime=now, ModifyTime=now)
    return e.AllocDesiredTransition(
        Allocs={alloc.ID: DesiredTransition(Migrate=True, NoShutdownDelay=no_shutdown_delay)},
        Evals=[ev])
