"""The deterministic simulation, seed by seed (``tests/sim/world.py`` says what runs).

``pytest tests/sim`` runs seeds 0..19 (the fast tier), ``pytest --full tests/sim`` seeds
0..199; ``--sim-seeds N`` runs 0..N-1 and
``--sim-seed N`` exactly one (a failure prints its seed and that command line).
"""
from __future__ import annotations

import os
import random
import subprocess
import sys

from caravan.fsm.apply import FSM
from caravan.server.log import ReplicatedLog
from caravan.server.raft import RaftNode, RaftSettings
from tests.conftest import sim_seed_count
from tests.sim.memlog import MemRaft
from tests.sim.world import SimConfig, run_seed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config_for(seed: int) -> SimConfig:
    """Every fourth seed runs five servers (two may be down at once), the rest three."""
    return SimConfig(servers=5) if seed % 4 == 3 else SimConfig()


def pytest_generate_tests(metafunc):
    if "sim_seed" in metafunc.fixturenames:
        one = metafunc.config.getoption("sim_seed")
        seeds = [one] if one is not None else range(sim_seed_count(metafunc.config))
        metafunc.parametrize("sim_seed", seeds, ids=lambda s: f"seed={s}")


def test_seed(sim_seed):
    outcome = run_seed(sim_seed, config_for(sim_seed))
    # a run that did nothing would prove nothing
    assert outcome.entries > 50 and outcome.checks >= outcome.entries, outcome
    assert outcome.stats.get("register ok", 0) > 0, outcome.stats


def test_the_garbage_collector_runs_during_a_seed():
    """The leader's collector deletes evals, allocs and dead jobs while the invariants
    (summaries equal their recount among them) are checked after every entry."""
    stats = run_seed(0, config_for(0)).stats
    assert stats.get("gc entries", 0) > 0 and stats.get("gc objects proposed", 0) > 0


def test_failed_allocations_are_rescheduled_during_seeds():
    """Workloads carry reschedule policies and tasks that never start: failed
    allocations are replaced (now, or by a follow-up eval the broker holds until its
    WaitUntil) while the invariants, replacement chains included, hold."""
    stats = [run_seed(seed, config_for(seed)).stats for seed in (0, 1, 2)]
    assert sum(s.get("rescheduled allocs", 0) for s in stats) > 0, stats
    assert sum(s.get("follow-up evals", 0) for s in stats) > 0, stats


def test_a_seed_replays_identically():
    """The same seed gives the same trace (every commit, fault, client and node event,
    with its virtual time), twice in this process and once in a fresh one whose
    string hashing differs."""
    first = run_seed(7, config_for(7))
    second = run_seed(7, config_for(7))
    assert first.trace_hash == second.trace_hash
    assert (first.entries, first.stats) == (second.entries, second.stats)
    code = ("from tests.sim.test_sim import config_for; from tests.sim.world import run_seed; "
            "print(run_seed(7, config_for(7)).trace_hash)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert out.stdout.strip() == first.trace_hash
    assert run_seed(8, config_for(8)).trace_hash != first.trace_hash


def test_both_logs_satisfy_the_log_protocol(tmp_path):
    group = MemRaft(3, random.Random(1), lambda line: None)
    assert isinstance(group.replicas[0], ReplicatedLog)
    raft = RaftNode(RaftSettings("127.0.0.1:1", (), str(tmp_path), "secret"), FSM())
    assert isinstance(raft, ReplicatedLog)


def test_the_workload_preempts_and_spreads():
    """System jobs in the workload evict lower-priority allocations now and then (the
    invariants then check the evicted ones against their preemptor), and jobs with
    spreads and affinities are placed."""
    preemptions = 0
    for seed in range(8):
        outcome = run_seed(seed, config_for(seed))
        preemptions += outcome.stats.get("preemptions proposed", 0)
    assert preemptions > 0
