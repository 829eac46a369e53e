"""``caravan job run`` following an evaluation into its deployment, against an
in-memory agent (httpx.MockTransport) that plays the states one blocking read at a
time: placement failures give exit code 2, a failed deployment 1, a successful 0."""
from __future__ import annotations

import json

import httpx
import pytest

from caravan.server.commands import main

EVAL = "e0000000-0000-4000-8000-000000000001"
DEPLOY = "d0000000-0000-4000-8000-000000000001"
ALLOC = "a0000000-0000-4000-8000-000000000001"
NODE = "n0000000-0000-4000-8000-000000000001"


class Agent:
    def __init__(self, evals: list[dict], deployments: list[dict]):
        self.evals, self.deployments = evals, deployments
        self.registered = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/jobs" and request.method == "PUT":
            self.registered = json.loads(request.content)
            return httpx.Response(200, json={"EvalID": EVAL, "Warnings": ""})
        if path == f"/v1/evaluation/{EVAL}":
            ev = self.evals.pop(0) if len(self.evals) > 1 else self.evals[0]
            return httpx.Response(200, json={"ID": EVAL, "JobID": "web", **ev})
        if path == f"/v1/evaluation/{EVAL}/allocations":
            return httpx.Response(200, json=[{"ID": ALLOC, "NodeID": NODE, "TaskGroup": "web"}])
        if path == f"/v1/deployment/{DEPLOY}":
            d = self.deployments.pop(0) if len(self.deployments) > 1 else self.deployments[0]
            return httpx.Response(200, json={"ID": DEPLOY, **d})
        return httpx.Response(404, text="Not Found")


def deployment(status: str, healthy: int, description: str = "", index: int = 1) -> dict:
    return {"Status": status, "StatusDescription": description, "ModifyIndex": index,
            "TaskGroups": {"web": {"DesiredTotal": 2, "PlacedAllocs": 2,
                                   "HealthyAllocs": healthy, "UnhealthyAllocs": 0}}}


@pytest.fixture
def job_file(tmp_path):
    path = tmp_path / "web.json"
    path.write_text(json.dumps({"Job": {"ID": "web", "TaskGroups": [{"Name": "web"}]}}))
    return str(path)


def run(agent: Agent, job_file: str) -> int:
    return main(["job", "run", "-address", "http://agent.test", job_file],
                transport=httpx.MockTransport(agent))


def test_follows_the_eval_then_the_deployment_to_success(job_file, capsys):
    agent = Agent([{"Status": "pending", "ModifyIndex": 1},
                   {"Status": "complete", "ModifyIndex": 2, "DeploymentID": DEPLOY}],
                  [deployment("running", 0), deployment("running", 1, index=2),
                   deployment("successful", 2, "Deployment completed successfully", 3)])
    assert run(agent, job_file) == 0
    out = capsys.readouterr().out
    assert agent.registered == {"Job": {"ID": "web", "TaskGroups": [{"Name": "web"}]}}
    assert f'Allocation "{ALLOC[:8]}" created: node "{NODE[:8]}", group "web"' in out
    assert 'Evaluation status changed: "pending" -> "complete"' in out
    assert f'Monitoring deployment "{DEPLOY[:8]}"' in out
    assert f'Deployment "{DEPLOY[:8]}" successful' in out
    assert "Deployment completed successfully" in out


def test_a_failed_deployment_exits_1(job_file, capsys):
    agent = Agent([{"Status": "complete", "ModifyIndex": 2, "DeploymentID": DEPLOY}],
                  [deployment("failed", 0, "Failed due to unhealthy allocations")])
    assert run(agent, job_file) == 1
    assert "Failed due to unhealthy allocations" in capsys.readouterr().out


def test_placement_failures_exit_2_in_words(job_file, capsys):
    metrics = {"NodesEvaluated": 3, "CoalescedFailures": 1,
               "ConstraintFiltered": {"missing drivers": 2}, "NodesExhausted": 1,
               "DimensionExhausted": {"memory": 1}}
    agent = Agent([{"Status": "complete", "ModifyIndex": 2, "BlockedEval": "b" * 36,
                    "FailedTGAllocs": {"web": metrics}}], [])
    assert run(agent, job_file) == 2
    out = capsys.readouterr().out
    assert 'Task Group "web" (failed to place 2 allocations):' in out
    assert '* Constraint "missing drivers": 2 nodes excluded by filter' in out
    assert "* Resources exhausted on 1 nodes" in out
    assert '* Dimension "memory" exhausted on 1 nodes' in out
    assert 'waiting for additional capacity to place remainder' in out
