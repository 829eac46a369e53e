"""``caravan alloc logs`` against an in-memory agent (httpx.MockTransport): the
request it makes for ``GET /v1/client/fs/logs/<alloc>`` and how it prints the
plain-text body, streamed with ``-f``. The end-to-end test against a real agent is in
tests/test_cli_logs_agent.py."""
from __future__ import annotations

import httpx
import pytest

from caravan.server.commands import main

ALLOC = "5a3c2d1e-0000-4000-8000-000000000001"


def alloc(tasks=("web",)) -> dict:
    return {"ID": ALLOC, "TaskGroup": "g",
            "Job": {"TaskGroups": [{"Name": "g", "Tasks": [{"Name": t} for t in tasks]}]}}


class FakeAgent:
    def __init__(self, tasks=("web",), logs: list[bytes] | None = None, status: int = 200):
        self.alloc = alloc(tasks)
        self.logs = logs if logs is not None else [b"hello\n"]
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/v1/allocations":
            prefix = request.url.params.get("prefix", "")
            return httpx.Response(200, json=[self.alloc] if ALLOC.startswith(prefix) else [])
        if path == f"/v1/allocation/{ALLOC}":
            return httpx.Response(200, json=self.alloc)
        if path == f"/v1/client/fs/logs/{ALLOC}":
            if self.status != 200:
                return httpx.Response(self.status, text="log file not found")
            return httpx.Response(200, content=iter(self.logs),
                                  headers={"content-type": "text/plain"})
        return httpx.Response(404, text="Not Found")

    def log_request(self) -> httpx.Request:
        return [r for r in self.requests if r.url.path.startswith("/v1/client/fs/logs/")][-1]


def run(agent: FakeAgent, *argv: str) -> int:
    return main(["alloc", "logs", "-address", "http://agent.test", *argv],
                transport=httpx.MockTransport(agent))


def test_stdout_of_the_only_task_by_alloc_prefix(capsysbinary):
    agent = FakeAgent(logs=[b"line one\n", b"line two\n"])
    assert run(agent, ALLOC[:8]) == 0
    assert capsysbinary.readouterr().out == b"line one\nline two\n"
    params = agent.log_request().url.params
    assert dict(params) == {"task": "web", "type": "stdout", "plain": "true"}


def test_stderr_and_follow_are_asked_for_and_every_chunk_is_printed(capsysbinary):
    chunks = [f"chunk {i}\n".encode() for i in range(50)]
    agent = FakeAgent(logs=chunks)
    assert run(agent, "-f", "-stderr", ALLOC) == 0
    assert capsysbinary.readouterr().out == b"".join(chunks)
    params = agent.log_request().url.params
    assert params["type"] == "stderr" and params["follow"] == "true"


def test_a_task_must_be_named_when_the_group_has_several(capsys):
    agent = FakeAgent(tasks=("web", "sidecar"))
    assert run(agent, ALLOC) == 1
    assert "more than one task, specify one: web, sidecar" in capsys.readouterr().err
    assert run(agent, ALLOC, "sidecar") == 0
    assert agent.log_request().url.params["task"] == "sidecar"
    assert run(agent, ALLOC, "db") == 1
    assert "Could not find task named: db" in capsys.readouterr().err


@pytest.mark.parametrize("status", [404, 500])
def test_a_server_error_is_shown_as_its_message(capsys, status):
    agent = FakeAgent(status=status)
    assert run(agent, ALLOC) == 1
    err = capsys.readouterr().err
    assert f"Unexpected response code: {status} (log file not found)" in err
    assert "Traceback" not in err


def test_an_unknown_allocation(capsys):
    assert run(FakeAgent(), "ffff") == 1
    assert 'No allocation with prefix "ffff" found' in capsys.readouterr().err
