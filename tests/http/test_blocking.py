"""Blocking queries (?index=&wait=) and the read headers, against a real agent."""
from __future__ import annotations

import asyncio
import threading
import time

import httpx

from tests.http.helpers import (
    assert_error,
    assert_read_headers,
    created_by,
    enc,
    index_of,
    register,
    service_job,
    settle,
    the_blocked_eval,
    uid,
)
from tests.procs import dev_server


def later(base_url: str, delay: float, action, results: list | None = None) -> threading.Thread:
    """Run ``action(client)`` on its own connection after ``delay`` seconds; its
    return value is appended to ``results`` when given."""
    def run():
        time.sleep(delay)
        with httpx.Client(base_url=base_url, timeout=10) as c:
            out = action(c)
        if results is not None:
            results.append(out)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def timed_get(client, path, **params):
    t0 = time.monotonic()
    r = client.get(path, params=params)
    return r, time.monotonic() - t0


def test_blocking_read_returns_promptly_after_a_change(client, dev_agent):
    job_id = uid("block")
    register(client, service_job(job_id))
    settle(client, job_id)
    r = client.get(f"/v1/job/{enc(job_id)}")
    index = assert_read_headers(r)

    writer = later(dev_agent.url, 0.2, lambda c: register(c, service_job(job_id, Priority=77)))
    r, elapsed = timed_get(client, f"/v1/job/{enc(job_id)}", index=index, wait="5s")
    writer.join()
    new_index = assert_read_headers(r)
    assert 0.15 <= elapsed < 2, elapsed
    assert new_index > index
    assert r.json()["Priority"] == 77 and r.json()["ModifyIndex"] == new_index


def test_blocking_read_with_asyncio(dev_agent, client):
    job_id = uid("ablock")
    register(client, service_job(job_id))
    settle(client, job_id)
    index = index_of(client.get(f"/v1/job/{enc(job_id)}"))

    async def scenario():
        async with httpx.AsyncClient(base_url=dev_agent.url, timeout=10) as ac:
            async def block():
                t0 = time.monotonic()
                r = await ac.get(f"/v1/job/{enc(job_id)}", params={"index": index, "wait": "5s"})
                return r, time.monotonic() - t0

            async def stop_it():
                await asyncio.sleep(0.2)
                return await ac.delete(f"/v1/job/{enc(job_id)}")

            return await asyncio.gather(block(), stop_it())

    (r, elapsed), stop = asyncio.run(scenario())
    assert stop.status_code == 200
    assert 0.15 <= elapsed < 2, elapsed
    assert assert_read_headers(r) > index
    assert r.json()["Stop"] is True


def test_blocking_read_times_out_with_the_same_index(client):
    job_id = uid("idle")
    register(client, service_job(job_id))
    settle(client, job_id)
    first = client.get(f"/v1/job/{enc(job_id)}")
    index = index_of(first)
    r, elapsed = timed_get(client, f"/v1/job/{enc(job_id)}", index=index, wait="300ms")
    assert assert_read_headers(r) == index
    assert 0.28 <= elapsed < 1.5, elapsed
    assert r.json() == first.json()


def test_blocking_read_ignores_writes_to_other_jobs(client, dev_agent):
    job_id = uid("quiet")
    register(client, service_job(job_id))
    settle(client, job_id)
    index = index_of(client.get(f"/v1/job/{enc(job_id)}"))
    writer = later(dev_agent.url, 0.05, lambda c: register(c, service_job(uid("noise"))))
    r, elapsed = timed_get(client, f"/v1/job/{enc(job_id)}", index=index, wait="300ms")
    writer.join()
    assert assert_read_headers(r) == index
    assert elapsed >= 0.28, elapsed


def test_blocking_list_wakes_on_register(client, dev_agent):
    prefix = uid("blist")
    r = client.get("/v1/jobs", params={"prefix": prefix})
    index = assert_read_headers(r)
    assert r.json() == []
    writer = later(dev_agent.url, 0.2, lambda c: register(c, service_job(prefix + "-a")))
    r, elapsed = timed_get(client, "/v1/jobs", prefix=prefix, index=index, wait="5s")
    writer.join()
    assert elapsed < 2, elapsed
    assert assert_read_headers(r) > index
    assert [s["ID"] for s in r.json()] == [prefix + "-a"]


def test_blocking_evaluations_and_versions(client, dev_agent):
    job_id = uid("bev")
    reg = register(client, service_job(job_id))
    # once the scheduler is done with the registration eval (and made its blocked eval),
    # the next change to the evals is the evaluate below
    blocked = the_blocked_eval(settle(client, job_id), previous=reg["EvalID"])
    index = index_of(client.get(f"/v1/job/{enc(job_id)}/evaluations"))
    replies = []
    writer = later(dev_agent.url, 0.1,
                   lambda c: c.put(f"/v1/job/{enc(job_id)}/evaluate").json(), replies)
    r, elapsed = timed_get(client, f"/v1/job/{enc(job_id)}/evaluations", index=index, wait="5s")
    writer.join()
    assert elapsed < 2 and assert_read_headers(r) > index
    evals = r.json()
    forced = replies[0]["EvalID"]
    assert created_by(evals, reg["EvalID"], forced) == [forced, reg["EvalID"]]
    # woken by the evaluate's write; the scheduler may have finished it by the time the
    # reply is read: then its blocked eval has superseded the old one
    by_id = {e["ID"]: e for e in evals}
    if len(evals) == 3:
        assert by_id[blocked["ID"]] == blocked
    else:
        assert len(evals) == 4
        assert by_id[forced]["Status"] == "complete"
        assert the_blocked_eval(evals, previous=forced)["ID"] == by_id[forced]["BlockedEval"]
        assert by_id[blocked["ID"]]["Status"] == "canceled"

    evals = settle(client, job_id)
    # settled: the evaluate's eval failed too; its blocked eval superseded the old one
    newer = the_blocked_eval(evals, previous=forced)
    assert [e["ID"] for e in evals] == [newer["ID"], forced, blocked["ID"], reg["EvalID"]]
    assert evals[2]["Status"] == "canceled"
    assert evals[2]["StatusDescription"] == f'superseded by blocked evaluation "{newer["ID"]}"'
    r = client.get(f"/v1/job/{enc(job_id)}/versions")
    index = assert_read_headers(r)
    writer = later(dev_agent.url, 0.1,
                   lambda c: register(c, service_job(job_id, Meta={"new": "version"})))
    r, elapsed = timed_get(client, f"/v1/job/{enc(job_id)}/versions", index=index, wait="5s")
    writer.join()
    assert elapsed < 2 and assert_read_headers(r) > index
    assert [v["Version"] for v in r.json()["Versions"]] == [1, 0]
    assert r.json()["Index"] == index_of(r)


def test_blocking_read_of_a_purged_job_answers_404(client, dev_agent):
    job_id = uid("bpurge")
    register(client, service_job(job_id))
    settle(client, job_id)
    index = index_of(client.get(f"/v1/job/{enc(job_id)}"))
    writer = later(dev_agent.url, 0.1,
                   lambda c: c.delete(f"/v1/job/{enc(job_id)}", params={"purge": "true"}))
    r, elapsed = timed_get(client, f"/v1/job/{enc(job_id)}", index=index, wait="5s")
    writer.join()
    assert elapsed < 2, elapsed
    assert_error(r, 404, "job not found")


def test_index_below_current_returns_at_once(client):
    job_id = uid("past")
    register(client, service_job(job_id))
    settle(client, job_id)
    index = index_of(client.get(f"/v1/job/{enc(job_id)}"))
    for past in (0, 1, index - 1):
        r, elapsed = timed_get(client, f"/v1/job/{enc(job_id)}", index=past, wait="5s")
        assert assert_read_headers(r) == index
        assert elapsed < 0.5, elapsed


def test_index_of_a_table_never_written_is_zero(tmp_path):
    """Nomad answers X-Nomad-Index 0 for a table never written (its Go client's tests
    assert it); index=0 does not block, and a watcher that sends a later index blocks
    until the first write."""
    server = dev_server(tmp_path).start()
    try:
        server.wait_healthy()
        with httpx.Client(base_url=server.url, timeout=10) as c:
            reads = ["/v1/jobs", "/v1/evaluations", "/v1/allocations", "/v1/deployments",
                     "/v1/nodes", "/v1/job/ghost/evaluations", "/v1/job/ghost/allocations",
                     "/v1/job/ghost/deployments", "/v1/job/ghost/deployment"]
            for path in reads:
                assert_read_headers(c.get(path), fresh=True)
                r, elapsed = timed_get(c, path, index=0, wait="5s")
                assert assert_read_headers(r, fresh=True) == 0 and elapsed < 0.5
            writer = later(server.url, 0.3, lambda w: register(w, service_job("first")))
            r, elapsed = timed_get(c, "/v1/jobs", index=1, wait="5s")
            writer.join()
            assert elapsed < 2 and assert_read_headers(r) > 1
            assert [j["ID"] for j in r.json()] == ["first"]
    finally:
        server.stop()


def test_stale_reads(client):
    job_id = uid("stale")
    register(client, service_job(job_id))
    settle(client, job_id)
    for stale in ("", "true"):
        r = client.get(f"/v1/job/{enc(job_id)}", params={"stale": stale})
        index = assert_read_headers(r)
        assert r.json()["ID"] == job_id
        r = client.get("/v1/jobs", params={"stale": stale, "prefix": job_id})
        assert_read_headers(r)
        assert [s["ID"] for s in r.json()] == [job_id]
        r, elapsed = timed_get(client, f"/v1/job/{enc(job_id)}", stale=stale, index=index,
                               wait="100ms")
        assert assert_read_headers(r) == index and 0.09 <= elapsed < 1


def test_read_headers_on_every_read_endpoint(client):
    job_id = uid("hdr")
    register(client, service_job(job_id))
    for suffix in ("", "/versions", "/summary", "/evaluations", "/allocations", "/deployments",
                   "/deployment"):
        # the shared agent has no node: its allocations table may never be written
        written = suffix not in ("/allocations", "/deployments", "/deployment")
        assert_read_headers(client.get(f"/v1/job/{enc(job_id)}{suffix}"),
                            fresh=False if written else None)
    assert_read_headers(client.get("/v1/jobs"))
