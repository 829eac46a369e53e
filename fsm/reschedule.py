"""Reschedule policies of failed allocations: pure functions of an allocation, its
policy and a time (unix ns). Nomad >= 0.8's ``Allocation.NextRescheduleTime``,
``NextDelay``, ``RescheduleEligible`` (``nomad/structs/structs.go``) and the
scheduler's ``updateRescheduleTracker`` (``scheduler/generic_sched.go``).

Shared by the state machine (which allocations ``-force-reschedule`` marks), the node
RPC (whether a failure report creates an eval) and the reconciler (now, later or
never); none of them reads a clock here.
"""
from __future__ import annotations

from typing import TypeGuard

from caravan.fsm.structs import Allocation, RescheduleEvent, ReschedulePolicy, RescheduleTracker, TaskGroup
from caravan.fsm.times import parse_rfc3339

DELAY_FUNCTIONS = ("constant", "exponential", "fibonacci")
MAX_PAST_EVENTS = 5     # an unlimited policy's tracker keeps this many past events


def enabled(policy: ReschedulePolicy | None) -> TypeGuard[ReschedulePolicy]:
    """``ReschedulePolicy.Enabled``: some attempts, or unlimited."""
    return policy is not None and ((policy.Attempts or 0) > 0 or bool(policy.Unlimited))


def policy_of(alloc: Allocation) -> ReschedulePolicy | None:
    """The policy of the allocation's group in the job version it runs."""
    if alloc.Job is None:
        return None
    tg = next((g for g in alloc.Job.TaskGroups or () if g.Name == alloc.TaskGroup), None)
    return tg.ReschedulePolicy if tg is not None else None


def group_policy(tg: TaskGroup | None) -> ReschedulePolicy | None:
    return tg.ReschedulePolicy if tg is not None else None


def last_event_time(alloc: Allocation) -> int:
    """When the allocation failed: its tasks' latest FinishedAt, else its ModifyTime."""
    latest = 0
    for state in (alloc.TaskStates or {}).values():
        latest = max(latest, parse_rfc3339(state.FinishedAt))
    return latest or alloc.ModifyTime


def _events(alloc: Allocation) -> list[RescheduleEvent]:
    tracker = alloc.RescheduleTracker
    return list(tracker.Events or ()) if tracker is not None else []


def next_delay(alloc: Allocation, policy: ReschedulePolicy | None = None) -> int:
    """The delay before the next rescheduling, from the policy's delay function and
    the delays already waited; past ``MaxDelay`` it is capped, and starts over from
    ``Delay`` once the allocation ran longer than the cap since its last rescheduling."""
    policy = policy if policy is not None else policy_of(alloc)
    if policy is None:
        return 0
    base, ceiling = policy.Delay or 0, policy.MaxDelay or 0
    events = _events(alloc)
    if not events:
        return base
    function = policy.DelayFunction or ""
    if function == "exponential":
        delay = events[-1].Delay * 2
    elif function == "fibonacci":
        delay = base
        if len(events) >= 2:
            n1, n2 = events[-1].Delay, events[-2].Delay
            # a series that was reset at the ceiling starts again
            delay = n1 if (n2 == ceiling and n1 == base) else n1 + n2
    else:
        return base
    if ceiling > 0 and delay > ceiling:
        delay = ceiling
        if last_event_time(alloc) - events[-1].RescheduleTime > delay:
            delay = base
    return delay


def attempted(tracker: RescheduleTracker | None, policy: ReschedulePolicy, fail_ns: int) -> int:
    """Reschedulings within the policy's interval before ``fail_ns``."""
    interval = policy.Interval or 0
    if tracker is None or (policy.Attempts or 0) <= 0:
        return 0
    return sum(1 for ev in tracker.Events or () if fail_ns - ev.RescheduleTime < interval)


def eligible(alloc: Allocation, policy: ReschedulePolicy | None, fail_ns: int) -> bool:
    """``RescheduleEligible``: may the allocation be rescheduled once more at all?"""
    if not enabled(policy):
        return False
    if policy.Unlimited:
        return True
    if not _events(alloc):
        return True
    return attempted(alloc.RescheduleTracker, policy, fail_ns) < (policy.Attempts or 0)


def next_reschedule_time(alloc: Allocation,
                         policy: ReschedulePolicy | None = None) -> tuple[int, bool]:
    """(time, eligible): when a failed allocation may be rescheduled and whether its
    policy allows it at all (``NextRescheduleTime``)."""
    policy = policy if policy is not None else policy_of(alloc)
    fail_ns = last_event_time(alloc)
    if alloc.DesiredStatus == "stop" or alloc.ClientStatus != "failed" or not fail_ns \
            or policy is None:
        return 0, False
    delay = next_delay(alloc, policy)
    when = fail_ns + delay
    attempts = policy.Attempts or 0
    ok = bool(policy.Unlimited) or (attempts > 0 and alloc.RescheduleTracker is None)
    if attempts > 0 and alloc.RescheduleTracker is not None and \
            alloc.RescheduleTracker.Events is not None:
        ok = attempted(alloc.RescheduleTracker, policy, fail_ns) < attempts and \
            delay < (policy.Interval or 0)
    return when, ok


def tracker_for(prev: Allocation, now_ns: int) -> RescheduleTracker:
    """The replacement's tracker: the previous allocation's events still in the
    interval (or its last few, when unlimited), plus this rescheduling."""
    policy = policy_of(prev)
    events = _events(prev)
    kept: list[RescheduleEvent] = []
    if events:
        if policy is not None and (policy.Attempts or 0) > 0:
            interval = policy.Interval or 0
            kept = [ev for ev in events if interval > 0 and now_ns - ev.RescheduleTime <= interval]
        else:
            kept = events[-MAX_PAST_EVENTS:]
    kept.append(RescheduleEvent(RescheduleTime=now_ns, PrevAllocID=prev.ID,
                                PrevNodeID=prev.NodeID, Delay=next_delay(prev, policy)))
    return RescheduleTracker(Events=kept)


def penalty_nodes(prev: Allocation) -> frozenset[str]:
    """Nodes a replacement should avoid: where it just failed and where earlier
    attempts ran (``getSelectOptions``)."""
    nodes = {ev.PrevNodeID for ev in _events(prev)}
    if prev.ClientStatus == "failed":
        nodes.add(prev.NodeID)
    return frozenset(nodes)
