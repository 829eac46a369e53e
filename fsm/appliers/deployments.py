"""Appliers of deployment entries: status changes, promotion and allocation health,
each followed by an auto-revert or an eval."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import deployments, jobs
from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.appliers import Result
from caravan.fsm.appliers.jobs import register
from caravan.fsm.store import Txn
from caravan.fsm.structs import Deployment, Evaluation


def deployment_status(txn: Txn, body: e.DeploymentStatusChange, *, tracked_versions: int) -> Result:
    u = body.DeploymentUpdate
    d = deployments.set_status(txn, u.DeploymentID, u.Status, u.StatusDescription)
    return _followup(txn, d, body.RevertToVersion, body.Eval, body.SubmitTime, tracked_versions)


def deployment_promote(txn: Txn, body: e.DeploymentPromote, *, tracked_versions: int) -> Result:
    d = deployments.promote(txn, body.DeploymentID, body.All, body.Groups, body.Now)
    return _followup(txn, d, None, body.Eval, 0, tracked_versions)


def deployment_alloc_health(txn: Txn, body: e.DeploymentAllocHealth, *, tracked_versions: int) -> Result:
    d = deployments.set_alloc_health(txn, body.DeploymentID, body.HealthyAllocationIDs or [],
                                     body.UnhealthyAllocationIDs or [], body.Timestamp)
    u = body.DeploymentUpdate
    if u is not None:
        d = deployments.set_status(txn, u.DeploymentID, u.Status, u.StatusDescription)
    return _followup(txn, d, body.RevertToVersion, body.Eval, body.SubmitTime, tracked_versions)


def _followup(txn: Txn, d: Deployment, revert_to: int | None, ev: Evaluation | None, submit_time: int,
              tracked_versions: int) -> Result:
    """After a deployment change: register the stable version again (auto-revert),
    which carries the eval, or else just insert the eval. Answers Nomad's
    DeploymentUpdateResponse."""
    result = {"EvalID": "", "EvalCreateIndex": 0, "DeploymentModifyIndex": d.ModifyIndex,
              "RevertedJobVersion": None}
    current = txn.get(t.JOBS, d.JobID)
    target = txn.get(t.JOB_VERSIONS, (d.JobID, revert_to)) if revert_to is not None else None
    if target is not None and current is not None:
        reg = register(txn, target, current, ev, submit_time, tracked_versions=tracked_versions)
        result.update(EvalID=reg["EvalID"], EvalCreateIndex=reg["EvalCreateIndex"],
                      RevertedJobVersion=revert_to)
    elif ev is not None and current is not None:
        ev = jobs.insert_eval(txn, replace(ev, JobModifyIndex=current.JobModifyIndex))
        jobs.refresh_status(txn, current.ID)
        result.update(EvalID=ev.ID, EvalCreateIndex=ev.CreateIndex)
    return result
