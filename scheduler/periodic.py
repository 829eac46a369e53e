"""The periodic dispatcher: launches children of periodic jobs at their cron slots.

Leader-only, and it keeps no state of its own. Each pass reads the state, asks
``launch_due`` what each tracked parent owes (from the parent's last launch, which
lives in the replicated ``periodic_launches`` table), submits one ``PeriodicLaunch``
entry per due parent, and sleeps until the earliest upcoming slot or until the jobs or
launches tables change. The FSM decides the rest, atomically with the launch:

- a slot at or before the recorded last launch is refused, so an old leader that has
  not yet noticed it was replaced, a retry after an unknown outcome, and a new leader
  that launches the same slot again all end with one child;
- with ``ProhibitOverlap`` a slot whose previous child is still pending or running is
  recorded as launched but creates nothing;
- a stopped or disabled parent leaves the ``periodic`` index, so it is not looked at.

A new leader therefore catches up the newest slot that fell due while nobody led (one
launch, however many slots were missed) and then follows the schedule
(Nomad re-adds every job on election and force-runs a missed launch the same way, but
its launch record is written after the child, so it can double or skip one).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.structs import Evaluation, Job
from caravan.fsm.submit import EntryRejected, Submit
from caravan.scheduler.background import AnyCommits, LeaderLoop
from caravan.scheduler.state import SchedulerState as State

log = logging.getLogger("caravan.periodic")

_MAX_SLEEP = 60.0     # re-read the state at least this often (seconds)
_RETRY_AFTER = 0.5    # after a failed submission (no leader for a moment)


class PeriodicDispatcher(LeaderLoop):
    """``async start()/stop()`` for ``LeaderServices.add``.

    ``state()`` returns the current state snapshot; ``submit(body)`` replicates an
    entry (``caravan.fsm.submit.Submit``); ``notifier()`` returns the agent's notifier
    (watch/wait/unwatch); ``due(job, last_ns, now_ns)`` is
    ``server.jobspec.periodic.launch_due``; ``now()`` is the wall clock in ns;
    ``new_id()`` makes eval ids."""

    def __init__(self, state: Callable[[], State], submit: Submit,
                 notifier: Callable[[], AnyCommits],
                 due: Callable[[Job, int, int], tuple[int | None, int | None]],
                 now: Callable[[], int], new_id: Callable[[], str]):
        self._state = state
        self._submit = submit
        self._notifier = notifier
        self._due = due
        self._now = now
        self._new_id = new_id
        self._bad_specs: set[tuple[str, int]] = set()   # logged once per job version
        self.launched = 0   # children created by this dispatcher (for logs and tests)
        self.skipped = 0    # slots skipped for ProhibitOverlap

    async def _run(self) -> None:
        notifier = self._notifier()
        while True:
            watch = notifier.watch((t.JOBS, t.PERIODIC_LAUNCHES))
            try:
                try:
                    sleep = await self.run_once()
                except Exception:   # never let one bad pass end the dispatcher
                    log.exception("periodic dispatcher pass failed; retrying")
                    sleep = _RETRY_AFTER
                await notifier.wait(watch, sleep)
            finally:
                notifier.unwatch(watch)

    async def run_once(self) -> float:
        """Launch what is due now; return how long to sleep (seconds) at most."""
        state = self._state()
        now = self._now()
        wake: int | None = None
        for job in state.by_index(t.JOBS, t.PERIODIC, True):
            launch = state.get(t.PERIODIC_LAUNCHES, job.ID)
            last = launch.Launch if launch is not None else job.SubmitTime
            try:
                slot, upcoming = self._due(job, last, now)
            except Exception as exc:  # validation refuses bad specs; be safe anyway
                if (job.ID, job.Version) not in self._bad_specs:
                    self._bad_specs.add((job.ID, job.Version))
                    log.error("periodic job %r: cannot compute its launches: %s", job.ID, exc)
                continue
            if slot is not None:
                if not await self._launch(job, slot):
                    return _RETRY_AFTER
            if upcoming is not None and (wake is None or upcoming < wake):
                wake = upcoming
        if wake is None:
            return _MAX_SLEEP
        return min(_MAX_SLEEP, max(0.0, (wake - self._now()) / 1e9))

    async def _launch(self, job: Job, slot: int) -> bool:
        """Submit the launch of ``slot``; False if it should be retried."""
        now = self._now()
        child_id = f"{job.ID}/periodic-{slot // 1_000_000_000}"
        ev = Evaluation(ID=self._new_id(), Namespace=job.Namespace or "default",
                        Priority=job.Priority or 50, Type=job.Type or "batch",
                        TriggeredBy="periodic-job", JobID=child_id, Status="pending",
                        CreateTime=now, ModifyTime=now)
        assert job.ID is not None   # a stored job has its ID
        body = e.PeriodicLaunch(ParentID=job.ID, LaunchTime=slot, Eval=ev, SubmitTime=now)
        try:
            result = await self._submit(body)
        except EntryRejected as rej:
            # 409: this slot (or a later one) was launched already, e.g. by the previous
            # leader; 400/404: the parent was stopped, disabled or purged meanwhile.
            log.info("periodic launch of %r at %d refused: %s", job.ID, slot, rej.message)
            return True
        except Exception as exc:   # no leader / outcome unknown: the slot is retried
            log.warning("periodic launch of %r at %d not committed: %s", job.ID, slot, exc)
            return False
        if result.get("Skipped"):
            self.skipped += 1
            log.info("periodic launch of %r at %d skipped: %s", job.ID, slot, result["Skipped"])
        else:
            self.launched += 1
            log.info("periodic job %r launched %s", job.ID, result.get("DispatchedJobID"))
        return True
