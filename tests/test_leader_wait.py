"""``/v1/status/leader`` and ``/v1/agent/health`` before the first election: they wait
up to ``rpc_hold_timeout`` for a leader, then answer 500 "No cluster leader", as Nomad's
RPC forwarding does. A client polling for a non-empty leader never sees ``200 ""``."""
from __future__ import annotations

import subprocess
import sys
import time

import httpx

from tests.procs import ROOT, free_ports, make_cluster, wait_until


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(base_url + "/v1/status/peers", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _leader_answer(r: httpx.Response, wrong: list) -> str | None:
    """The leader a poll found, None for "not yet"; any other answer is put in
    ``wrong`` (``wait_until`` would swallow an assertion)."""
    if r.status_code == 500 and r.text == "No cluster leader":
        return None
    if r.status_code == 200 and isinstance(r.json(), str) and r.json():
        return r.json()
    wrong.append((r.status_code, r.text))
    return None


def test_no_leader_until_a_quorum_then_the_leader(tmp_path):
    c = make_cluster(tmp_path, n=3, cluster_toml='rpc_hold_timeout = "1s"')
    first, second = c.servers[0], c.servers[1]
    try:
        first.start()   # one of three: no quorum, no election
        wait_until(lambda: _answers(first.url), 30, "s1's HTTP port")
        for path in ("/v1/status/leader", "/v1/agent/health"):
            t0 = time.monotonic()
            r = httpx.get(first.url + path, timeout=10)
            elapsed = time.monotonic() - t0
            assert (r.status_code, r.text) == (500, "No cluster leader")
            assert 0.9 <= elapsed < 5, elapsed   # waited for the hold time, not longer

        second.start()  # a quorum: the poll ends on the leader, never on 200 ""
        wrong: list = []
        leader = wait_until(lambda: _leader_answer(
            httpx.get(first.url + "/v1/status/leader", timeout=10), wrong), 60, "a leader")
        assert wrong == [] and leader in (first.rpc, second.rpc)
        r = httpx.get(first.url + "/v1/agent/health", timeout=10)
        assert r.status_code == 200 and r.json()["server"]["leader"] == leader
    finally:
        c.stop()


def test_dev_agent_polled_from_its_start_never_answers_an_empty_leader(tmp_path):
    http, rpc, raft = free_ports(3)
    proc = subprocess.Popen([sys.executable, "-m", "caravan", "agent", "-dev", "-no-client",
                             "-http-port", str(http), "-rpc-port", str(rpc),
                             "-raft-port", str(raft), "-data-dir", str(tmp_path / "dev")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wrong: list = []
    try:
        def poll():
            try:
                r = httpx.get(f"http://127.0.0.1:{http}/v1/status/leader", timeout=10)
            except httpx.TransportError:
                return None   # not listening yet
            return _leader_answer(r, wrong)
        assert wait_until(poll, 30, "the dev agent's leader", interval=0.01) == \
            f"127.0.0.1:{rpc}"
        assert wrong == []
    finally:
        proc.terminate()
        proc.wait(15)
