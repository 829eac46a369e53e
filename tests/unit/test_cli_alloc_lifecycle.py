"""``caravan alloc status``: tasks listed in Nomad's order with their lifecycle hook."""
from __future__ import annotations

from caravan.server.commands.alloc import sorted_task_names, task_lifecycles


def test_lifecycle_tasks_come_first_and_are_labelled():
    alloc = {"TaskGroup": "g", "Job": {"TaskGroups": [{"Name": "g", "Tasks": [
        {"Name": "web", "Lifecycle": None},
        {"Name": "proxy", "Lifecycle": {"Hook": "prestart", "Sidecar": True}},
        {"Name": "init", "Lifecycle": {"Hook": "prestart", "Sidecar": False}},
        {"Name": "cleanup", "Lifecycle": {"Hook": "poststop", "Sidecar": False}},
        {"Name": "api", "Lifecycle": {"Hook": "", "Sidecar": False}}]}]}}
    lifecycles = task_lifecycles(alloc)
    assert set(lifecycles) == {"proxy", "init", "cleanup"}
    states = dict.fromkeys(["web", "proxy", "init", "cleanup", "api"], {})
    assert sorted_task_names(states, lifecycles) == ["cleanup", "init", "proxy", "api", "web"]
    assert task_lifecycles({"TaskGroup": "g", "Job": None}) == {}
