"""The checkers on hand-written histories: each must catch what it is for."""
from __future__ import annotations

from tests.nemesis.checkers import (
    check_dispatches,
    check_linearizable,
    check_no_overcommit,
    check_versions,
    linearizable,
    merge_versions,
)
from tests.nemesis.history import History, Op, load

INF = float("inf")


def op(i, f, invoke, complete, value=None, out=None, result="ok", key="j", server="s1"):
    return Op(i, f"p{i}", f, key, value, server, invoke, result, out,
              complete if result != "unknown" else INF)


def test_sequential_register_stop_read_is_linearizable():
    assert linearizable([op(0, "register", 0, 1, "a"), op(1, "read", 2, 3, out=[0, "a", False]),
                         op(2, "stop", 4, 5), op(3, "read", 6, 7, out=[1, "a", True]),
                         op(4, "stop", 8, 9), op(5, "read", 10, 11, out=[1, "a", True])])


def test_a_read_after_an_acknowledged_write_must_see_it():
    stale = [op(0, "register", 0, 1, "a"), op(1, "register", 2, 3, "b"),
             op(2, "read", 4, 5, out=[0, "a", False])]
    assert not linearizable(stale)
    problems = check_linearizable(stale, {"j": [{"Version": 0, "Meta": {"w": "a"}},
                                                {"Version": 1, "Meta": {"w": "b"}}]})
    assert len(problems) == 1 and "op 2 read via s1 at 4s saw version 0" in problems[0]


def test_concurrent_operations_may_take_effect_in_either_order():
    # the read overlaps the write: it may see the job or not
    assert linearizable([op(0, "register", 0, 5, "a"), op(1, "read", 1, 2, out=None)])
    assert linearizable([op(0, "register", 0, 5, "a"), op(1, "read", 1, 2, out=[0, "a", False])])
    # two overlapping registers: a later read decides their order
    assert linearizable([op(0, "register", 0, 3, "a"), op(1, "register", 1, 2, "b"),
                         op(2, "read", 4, 5, out=[1, "a", False])])
    # but a version the writes cannot produce is not explained by any order
    assert not linearizable([op(0, "register", 0, 3, "a"), op(1, "register", 1, 2, "b"),
                             op(2, "read", 4, 5, out=[0, "a", False])])


def test_an_unknown_write_may_apply_late_or_never_but_only_once():
    unknown = op(0, "register", 0, None, "a", result="unknown")
    assert linearizable([unknown, op(1, "read", 1, 2, out=None)])
    assert linearizable([unknown, op(1, "read", 1, 2, out=None),
                         op(2, "read", 10, 11, out=[0, "a", False])])
    # once seen, it cannot un-apply
    assert not linearizable([unknown, op(1, "read", 1, 2, out=[0, "a", False]),
                             op(2, "read", 3, 4, out=None)])
    # a failed write never applies
    failed = op(0, "register", 0, 1, "a", result="fail")
    assert not linearizable([failed, op(1, "read", 2, 3, out=[0, "a", False])])


def test_versions_with_gaps_duplicates_or_missing_acknowledged_writes_are_reported():
    ops = [op(0, "register", 0, 1, "a", out=10), op(1, "register", 2, 3, "b", out=12),
           op(2, "stop", 4, 5, out=14)]
    good = {"j": [{"Version": 0, "Meta": {"w": "a"}, "JobModifyIndex": 10},
                  {"Version": 1, "Meta": {"w": "b"}, "JobModifyIndex": 12},
                  {"Version": 2, "Meta": {"w": "b"}, "Stop": True, "JobModifyIndex": 14}]}
    assert check_versions(ops, good) == ([], 0)
    problems, lost = check_versions(ops, {"j": good["j"][:1] + good["j"][2:]})
    assert lost == 1 and any("gaps" in p for p in problems)
    twice = {"j": [*good["j"], {"Version": 3, "Meta": {"w": "a"}, "JobModifyIndex": 16}]}
    problems, lost = check_versions(ops, twice)
    assert lost == 0 and problems == ["job 'j': writes applied more than once: ['a']"]
    problems, lost = check_versions(ops, {"j": good["j"][:2]})
    assert lost == 1 and "op 2 stop" in problems[0]


def test_a_lost_dispatch_is_reported():
    ops = [op(0, "dispatch", 0, 1, out="p/dispatch-1", key="p"),
           op(1, "dispatch", 0, 1, out=None, key="p", result="unknown")]
    assert check_dispatches(ops, {"p/dispatch-1"}) == ([], 0)
    assert check_dispatches(ops, set())[1] == 1


def _node(cpu, mem):
    return {"ID": "n1", "Name": "c1", "NodeResources": {"Cpu": {"CpuShares": cpu},
                                                        "Memory": {"MemoryMB": mem}}}


def _alloc(cpu, mem, client="running"):
    return {"ID": f"a{cpu}{mem}{client}", "NodeID": "n1", "ClientStatus": client,
            "DesiredStatus": "run", "TaskResources": {"t": {"CPU": cpu, "MemoryMB": mem}}}


def test_overcommit_counts_live_allocations_only():
    assert check_no_overcommit([_node(1000, 512)], {"n1": [_alloc(600, 256), _alloc(400, 256),
                                                           _alloc(900, 500, "complete")]}) == []
    problems = check_no_overcommit([_node(1000, 512)],
                                   {"n1": [_alloc(600, 256), _alloc(500, 256)]})
    assert len(problems) == 1 and "1100 MHz" in problems[0]


def test_history_file_round_trip(tmp_path):
    h = History(tmp_path / "h.jsonl")
    a = h.invoke("w0", "register", "j", "w0:1", "s1")
    b = h.invoke("w1", "read", "j", None, "s2")
    h.fault("kill-leader", "start", target="s1")
    h.complete(a, "unknown", error="ReadTimeout")
    h.complete(b, "ok", [0, "w0:1", False])
    h.close()
    loaded = load(tmp_path / "h.jsonl")
    assert [o.result for o in loaded.ops] == ["unknown", "ok"]
    assert loaded.ops[0].complete == INF and loaded.ops[1].out == [0, "w0:1", False]
    assert loaded.faults[0]["target"] == "s1"


def test_versions_of_a_collected_job_come_from_the_archive():
    a, stop = {"Version": 0, "Meta": {"w": "a"}}, \
        {"Version": 1, "Meta": {"w": "a"}, "Stop": True, "JobModifyIndex": 9}
    ops = [op(0, "register", 0, 1, "a"), op(1, "stop", 2, 3, out=9)]
    # collected after the archiver recorded it: the archive speaks for it
    merged = merge_versions({"j": [stop, a]}, {"j": []})
    assert merged == {"j": [stop, a]} and check_versions(ops, merged) == ([], 0)
    # still there: the final state speaks, so a version lost after archiving is caught
    again = {"Version": 2, "Meta": {"w": "b"}}
    assert merge_versions({"j": [stop, a]}, {"j": [again, stop, a]})["j"][0] == again
    problems, lost = check_versions(ops, merge_versions({"j": [stop, a]}, {"j": [a]}))
    assert lost == 1 and "op 1 stop" in problems[0]
    # an acknowledged write in neither is still a lost write
    problems, lost = check_versions(ops + [op(2, "register", 4, 5, "c")],
                                    merge_versions({"j": [stop, a]}, {}))
    assert lost == 1 and "op 2 register" in problems[0]
    # and a gap in the archived versions is still a gap
    problems, _ = check_versions([], merge_versions({"j": [again, a]}, {}))
    assert "gaps" in problems[0]
