"""What the server's request handlers may ask of the scheduler, and nothing more: the
HTTP gateway and the node service call these, never the scheduler's internals (``[tool.importlinter]``
in pyproject.toml holds it to that).

- ``force_gc``: Nomad's ``/v1/system/gc``, a collection of everything eligible,
  whatever its age, submitted as the core GC's entries;
- ``deployment_eval`` and ``deployment_failure``: the eval a deployment change asks
  for, and a failed deployment's description and the job version to roll back to, as
  the deployment watcher decides them;
- ``dry_run``: the plan a job would get (``/v1/job/:id/plan``), on a private copy of the
  state;
- ``node_update_evals``: the ``node-update`` evals a node's change calls for;
- ``computed_class``: a registering node's ``ComputedClass``, the key the feasibility
  checks are memoized by.

All take the state (and any id or time) from the caller, decided before the entry is
submitted.
"""
from __future__ import annotations

from caravan.fsm.store import State
from caravan.fsm.structs import Deployment
from caravan.fsm.submit import Submit
from caravan.scheduler.core_gc import FORCE, collect
from caravan.scheduler.deployment_watcher import deployment_eval, failure
from caravan.scheduler.dry_run import dry_run
from caravan.scheduler.eval_feed import node_update_evals
from caravan.scheduler.feasible import computed_class

__all__ = ["computed_class", "deployment_eval", "deployment_failure", "dry_run", "force_gc",
           "node_update_evals"]


async def force_gc(state: State, submit: Submit, now_ns: int) -> dict[str, int]:
    """Collect everything eligible in ``state`` regardless of age; how many of each kind
    (Jobs, Evals, Allocs, Deployments, Nodes) the FSM deleted."""
    return await collect(state, submit, now_ns, FORCE)


def deployment_failure(state: State, d: Deployment, base: str,
                       groups: list[str]) -> tuple[str, int | None]:
    """A deployment failed for ``base`` (the reason) in ``groups``: its description and
    the job version to revert to (None: no revert), as the deployment watcher decides."""
    return failure(state, d, base, groups)
