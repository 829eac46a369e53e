"""Shared helpers for the HTTP tests against a real ``caravan agent -dev``."""
from __future__ import annotations

import re
import time
import uuid
from urllib.parse import quote

import httpx

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SECOND = 1_000_000_000


def uid(prefix: str = "job") -> str:
    """A job ID unique across the session (the agent is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def enc(job_id: str) -> str:
    """The fully percent-encoded path segment (what the Go api and nomadpy send)."""
    return quote(job_id, safe="")


def raw(job_id: str) -> str:
    """The path with '/' left as is (what python-nomad sends)."""
    return quote(job_id, safe="/")


def task(name: str = "web", **over) -> dict:
    t = {"Name": name, "Driver": "docker", "Config": {"image": "redis:7"}}
    t.update(over)
    return t


def service_job(job_id: str, **over) -> dict:
    job = {"ID": job_id, "Name": job_id, "Type": "service",
           "TaskGroups": [{"Name": "cache", "Count": 1, "Tasks": [task("redis")]}]}
    job.update(over)
    return job


def batch_job(job_id: str, **over) -> dict:
    job = service_job(job_id, Type="batch")
    job.update(over)
    return job


def periodic_job(job_id: str, **over) -> dict:
    # yearly: no launch of its own can happen during a test run
    periodic = {"Spec": "0 0 1 1 *", "SpecType": "cron", "ProhibitOverlap": False}
    periodic.update(over.pop("Periodic", {}))
    return batch_job(job_id, Periodic=periodic, **over)


def parameterized_job(job_id: str, payload: str = "optional", required=("color",),
                      optional=("size",), **over) -> dict:
    return batch_job(job_id, ParameterizedJob={
        "Payload": payload, "MetaRequired": list(required) or None,
        "MetaOptional": list(optional) or None}, **over)


def register(client: httpx.Client, job: dict, method: str = "PUT", **opts) -> dict:
    r = client.request(method, "/v1/jobs", json={"Job": job, **opts})
    assert r.status_code == 200, r.text
    return r.json()


def index_of(r: httpx.Response) -> int:
    value = r.headers["X-Nomad-Index"]
    assert value.isdigit(), value
    return int(value)


def assert_write_headers(r: httpx.Response) -> int:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    index = index_of(r)
    assert index > 0
    return index


def assert_read_headers(r: httpx.Response, *, fresh: bool | None = False) -> int:
    """The read headers of a 200; the index is positive, or, for a ``fresh`` table
    never written, 0 (as Nomad's); ``fresh=None``: either."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["X-Nomad-KnownLeader"] == "true"
    assert r.headers["X-Nomad-LastContact"].isdigit()
    index = index_of(r)
    if fresh is not None:
        assert index == 0 if fresh else index > 0, index
    return index


def assert_error(r: httpx.Response, status: int, message: str | None = None, *,
                 startswith: str | None = None, contains: str | None = None) -> None:
    """A plain-text error body holding the message alone."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    assert "Traceback" not in r.text
    if message is not None:
        assert r.text == message
    if startswith is not None:
        assert r.text.startswith(startswith), r.text
    if contains is not None:
        assert contains in r.text, r.text


# --- the scheduler works in the background --------------------------------------------------
#
# Every write that creates an eval (register, evaluate, revert, deregister, dispatch,
# periodic force) is followed, shortly and in the background, by a scheduler worker
# that completes the eval. As in Nomad, every eval that fails to place something --
# always, on the dev agent, which has no nodes -- creates a NEW ``blocked`` eval
# (``PreviousEval`` = the failing eval, which records it as its ``BlockedEval``), and
# the job's older blocked eval is canceled as superseded in the same write: a job has
# at most one blocked eval at a time, and the newest eval of a job is then typically
# that blocked eval, not the one the test created. A successful eval (nothing to
# place, e.g. a deregister) cancels the blocked eval; purging the job does too. A test
# that observes state after such a write waits for that work to finish first.

BLOCKED_DESCRIPTION = "created to place remaining allocations"
BLOCKED_TRIGGER = "queued-allocs"


def superseded_description(blocked_id: str) -> str:
    """How a blocked eval replaced by a newer one is canceled."""
    return f'superseded by blocked evaluation "{blocked_id}"'


def successful_description(eval_id: str) -> str:
    """How a blocked eval made moot by a successful eval is canceled."""
    return f'evaluation "{eval_id}" successful'


def _wait_none_pending(client: httpx.Client, path: str, params: dict, what: str,
                       timeout: float) -> list[dict]:
    """Read the evals at ``path`` until none is ``pending``, parking on blocking
    queries (each wakes on the next change to the evals table)."""
    deadline = time.monotonic() + timeout
    r = client.get(path, params=params)
    while True:
        assert r.status_code == 200, r.text
        evals = r.json()
        pending = [e for e in evals if e["Status"] == "pending"]
        if not pending:
            return evals
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{what}: evals still pending after {timeout}s: "
                                 f"{[(e['ID'], e['JobID'], e['TriggeredBy']) for e in pending]}")
        wait_ms = max(1, int(min(remaining, 1.0) * 1000))
        r = client.get(path, params={**params, "index": index_of(r), "wait": f"{wait_ms}ms"})


def settle(client: httpx.Client, job_id: str, timeout: float = 10) -> list[dict]:
    """Wait until the scheduler is done with the job (none of its evals is ``pending``)
    and return the job's evals as then listed (newest first).

    A ``blocked`` eval is not pending: it waits for capacity, which never comes on
    the dev agent, and no worker touches it until nodes or allocations change."""
    return _wait_none_pending(client, f"/v1/job/{enc(job_id)}/evaluations", {},
                              f"job {job_id!r}", timeout)


def settle_all(client: httpx.Client, timeout: float = 10) -> None:
    """Wait until no eval of any job is ``pending``: the whole agent is quiet."""
    _wait_none_pending(client, "/v1/evaluations", {"status": "pending"}, "the agent", timeout)


def created_by(evals: list[dict], *eval_ids: str) -> list[str]:
    """The IDs among ``evals`` (in listed order) that a test created itself."""
    wanted = set(eval_ids)
    return [e["ID"] for e in evals if e["ID"] in wanted]


def assert_no_nodes_outcome(ev: dict, groups=("cache",), *,
                            evals: list[dict] | None = None) -> None:
    """A completed eval that wanted placements on the node-less dev agent: every
    group failed to place, nothing was evaluated, and the eval created a blocked eval
    of its own (``BlockedEval``). Given the job's ``evals``, that blocked eval is
    checked too: made of this eval, with its failed metrics, in the same write."""
    assert ev["Status"] == "complete", ev
    assert set(ev["FailedTGAllocs"] or ()) == set(groups), ev["FailedTGAllocs"]
    for metric in ev["FailedTGAllocs"].values():
        assert metric["NodesEvaluated"] == 0
    assert set(ev["QueuedAllocations"] or ()) >= set(groups), ev["QueuedAllocations"]
    assert ev["SnapshotIndex"] >= ev["CreateIndex"]
    assert UUID_RE.match(ev["BlockedEval"]), ev  # every failing eval blocks anew
    if evals is not None:
        b = next((e for e in evals if e["ID"] == ev["BlockedEval"]), None)
        assert b is not None, (ev["BlockedEval"], [e["ID"] for e in evals])
        assert b["TriggeredBy"] == BLOCKED_TRIGGER and b["PreviousEval"] == ev["ID"], b
        assert b["FailedTGAllocs"] == ev["FailedTGAllocs"]
        assert b["JobID"] == ev["JobID"] and b["Priority"] == ev["Priority"]
        assert b["JobModifyIndex"] == ev["JobModifyIndex"]
        # the eval's completion and its blocked eval are one write
        assert b["CreateIndex"] == ev["ModifyIndex"] > ev["CreateIndex"], (b, ev)


def blocked_chain(evals: list[dict]) -> list[dict]:
    """The job's blocked evals (``TriggeredBy: queued-allocs``), oldest first, each
    checked against the eval that made it and against the one that superseded it.

    Each was made by a failing eval of the list (``PreviousEval``, which names it as
    its ``BlockedEval``) with that eval's failed metrics, in the same write. At most
    one is still ``blocked``. One canceled as superseded was superseded by the next
    blocked eval, in the write that created that one."""
    chain = sorted((e for e in evals if e["TriggeredBy"] == BLOCKED_TRIGGER),
                   key=lambda e: e["CreateIndex"])
    by_id = {e["ID"]: e for e in evals}
    for i, b in enumerate(chain):
        assert b["Status"] in ("blocked", "canceled"), b
        prev = by_id.get(b["PreviousEval"])
        assert prev is not None, (b["ID"], b["PreviousEval"], list(by_id))
        assert prev["Status"] == "complete" and prev["BlockedEval"] == b["ID"], (b, prev)
        assert prev["TriggeredBy"] != BLOCKED_TRIGGER
        assert b["FailedTGAllocs"] and b["FailedTGAllocs"] == prev["FailedTGAllocs"], b
        assert b["JobID"] == prev["JobID"] and b["Priority"] == prev["Priority"]
        assert b["Type"] == prev["Type"] and b["Namespace"] == prev["Namespace"]
        assert b["JobModifyIndex"] == prev["JobModifyIndex"]
        assert b["CreateIndex"] == prev["ModifyIndex"], (b, prev)
        if b["Status"] == "blocked":
            assert b["StatusDescription"] == BLOCKED_DESCRIPTION, b
            assert i == len(chain) - 1, [(e["ID"], e["Status"]) for e in chain]
        elif b["StatusDescription"].startswith("superseded"):
            assert i + 1 < len(chain), b
            newer = chain[i + 1]
            assert b["StatusDescription"] == superseded_description(newer["ID"]), (b, newer)
            assert b["ModifyIndex"] == newer["CreateIndex"]  # in the same write
    assert [e["Status"] for e in chain].count("blocked") <= 1, chain
    return chain


def the_blocked_eval(evals: list[dict], previous: str | None = None) -> dict:
    """The job's one blocked eval (a job has at most one at a time), with the chain of
    blocked evals it superseded checked (``blocked_chain``). ``previous``: the failing
    eval it must have been made of (the latest failing eval the test created)."""
    blocked = [e for e in evals if e["Status"] == "blocked"]
    assert len(blocked) == 1, [(e["ID"], e["Status"]) for e in evals]
    b = blocked[0]
    assert b["StatusDescription"] == BLOCKED_DESCRIPTION
    assert b["TriggeredBy"] == BLOCKED_TRIGGER
    assert b["FailedTGAllocs"], b
    assert b["PreviousEval"], b
    if previous is not None:
        assert b["PreviousEval"] == previous, (b["PreviousEval"], previous)
    chain = blocked_chain(evals)
    assert chain[-1] is b, [(e["ID"], e["Status"]) for e in chain]
    return b


def observe(client: httpx.Client, *job_ids: str) -> dict:
    """Everything a client can see about some jobs, to compare before and after a
    rejected write. The X-Nomad-Index of the list and of the evaluations/allocations/
    deployments reads is table-wide, so a change to any job, eval, alloc or deployment,
    not just the watched ones, shows up too.

    The snapshot is taken once the whole agent is quiet (``settle_all``): the scheduler
    finishing an earlier write in the background would otherwise move those table-wide
    indexes between the two snapshots. Tests run one at a time against the agent, so
    once nothing is pending nothing writes until the test's next request."""
    settle_all(client)
    seen = {}
    r = client.get("/v1/jobs", params={"prefix": uid("no-such-job")})
    seen["list"] = (r.status_code, r.headers.get("X-Nomad-Index"), r.text)
    for job_id in job_ids:
        for suffix in ("", "/versions", "/summary", "/evaluations", "/allocations",
                       "/deployments", "/deployment"):
            r = client.get(f"/v1/job/{enc(job_id)}{suffix}")
            seen[job_id + suffix] = (r.status_code, r.headers.get("X-Nomad-Index"), r.text)
        # the job's stub and its children (dispatched and periodic)
        r = client.get("/v1/jobs", params={"prefix": job_id})
        seen[job_id + " stubs"] = (r.status_code, r.headers.get("X-Nomad-Index"), r.text)
    return seen
