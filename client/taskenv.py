"""A task's environment as Nomad builds it, and ``${...}`` interpolation.

The agent's own environment is passed through (minus secrets Nomad also withholds),
then Nomad's ``NOMAD_*`` variables, then the task's ``Env`` with ``${NOMAD_*}``,
``${node.*}``, ``${attr.*}`` and ``${meta.*}`` interpolated. Meta is the job's, the
group's and the task's, the narrower winning, exported as ``NOMAD_META_<key>`` both as
written and upper-cased.
"""
from __future__ import annotations

import os
import re

from client.drivers.base import TaskDirs
from fsm.structs import Allocation, Node, Task, TaskGroup

WITHHELD = ("CONSUL_TOKEN", "CONSUL_HTTP_TOKEN", "VAULT_TOKEN", "NOMAD_TOKEN",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "GOOGLE_APPLICATION_CREDENTIALS")
_REF = re.compile(r"\$\{([^}]+)\}")


def alloc_index(name: str) -> int:
    m = re.search(r"\[(\d+)\]$", name)
    return int(m.group(1)) if m else 0


def _merged_meta(alloc: Allocation, tg: TaskGroup | None, task: Task) -> dict[str, str]:
    meta: dict[str, str] = {}
    for source in ((alloc.Job.Meta if alloc.Job else None), tg.Meta if tg else None, task.Meta):
        meta.update(source or {})
    return meta


def _networks(alloc: Allocation, task: Task):
    res = (alloc.TaskResources or {}).get(task.Name)
    nets = list(res.Networks or ()) if res is not None else []
    if alloc.SharedResources is not None:
        nets += list(alloc.SharedResources.Networks or ())
    return nets


def port_env(alloc: Allocation, task: Task) -> dict[str, str]:
    env: dict[str, str] = {}
    for net in _networks(alloc, task):
        for port in list(net.ReservedPorts or ()) + list(net.DynamicPorts or ()):
            label = port.Label
            env[f"NOMAD_IP_{label}"] = net.IP
            env[f"NOMAD_PORT_{label}"] = str(port.To or port.Value)
            env[f"NOMAD_HOST_PORT_{label}"] = str(port.Value)
            env[f"NOMAD_ADDR_{label}"] = f"{net.IP}:{port.Value}"
            env[f"NOMAD_HOST_IP_{label}"] = net.IP
            env[f"NOMAD_HOST_ADDR_{label}"] = f"{net.IP}:{port.Value}"
    return env


def nomad_env(alloc: Allocation, tg: TaskGroup | None, task: Task, node: Node, dirs: TaskDirs,
              region: str) -> dict[str, str]:
    job = alloc.Job
    res = (alloc.TaskResources or {}).get(task.Name) or task.Resources
    env = {
        "NOMAD_ALLOC_DIR": dirs.shared, "NOMAD_TASK_DIR": dirs.local,
        "NOMAD_SECRETS_DIR": dirs.secrets,
        "NOMAD_ALLOC_ID": alloc.ID, "NOMAD_SHORT_ALLOC_ID": alloc.ID[:8],
        "NOMAD_ALLOC_NAME": alloc.Name, "NOMAD_ALLOC_INDEX": str(alloc_index(alloc.Name)),
        "NOMAD_TASK_NAME": task.Name, "NOMAD_GROUP_NAME": alloc.TaskGroup,
        "NOMAD_JOB_NAME": (job.Name or job.ID or "") if job else alloc.JobID,
        "NOMAD_JOB_ID": alloc.JobID, "NOMAD_JOB_PARENT_ID": job.ParentID if job else "",
        "NOMAD_NAMESPACE": alloc.Namespace, "NOMAD_DC": node.Datacenter,
        "NOMAD_REGION": region, "NOMAD_NODE_ID": node.ID, "NOMAD_NODE_NAME": node.Name,
    }
    if res is not None:
        if res.CPU is not None:
            env["NOMAD_CPU_LIMIT"] = str(res.CPU)
        if res.MemoryMB is not None:
            env["NOMAD_MEMORY_LIMIT"] = str(res.MemoryMB)
    for key, value in _merged_meta(alloc, tg, task).items():
        env[f"NOMAD_META_{key}"] = value
        env[f"NOMAD_META_{key.upper()}"] = value
    env.update(port_env(alloc, task))
    return env


def interpolate(text: str, env: dict[str, str], node: Node) -> str:
    """Replace ``${NOMAD_X}``, ``${env.X}``, ``${node.unique.id}``, ``${node.datacenter}``,
    ``${node.unique.name}``, ``${node.class}``, ``${attr.X}`` and ``${meta.X}``; an
    unknown reference is left as written, as Nomad does."""
    def one(m: re.Match) -> str:
        ref = m.group(1).strip()
        if ref in env:
            return env[ref]
        if ref.startswith("env."):
            return env.get(ref[4:], m.group(0))
        node_refs = {"node.unique.id": node.ID, "node.datacenter": node.Datacenter,
                     "node.unique.name": node.Name, "node.class": node.NodeClass,
                     "node.region": env.get("NOMAD_REGION", "")}
        if ref in node_refs:
            return node_refs[ref]
        if ref.startswith("attr."):
            return (node.Attributes or {}).get(ref[5:], m.group(0))
        if ref.startswith("meta."):
            return (node.Meta or {}).get(ref[5:], m.group(0))
        return m.group(0)
    return _REF.sub(one, text)


def interpolate_value(value, env: dict[str, str], node: Node):
    """Interpolate every string inside a driver config value (lists and maps too)."""
    if isinstance(value, str):
        return interpolate(value, env, node)
    if isinstance(value, list):
        return [interpolate_value(v, env, node) for v in value]
    if isinstance(value, dict):
        return {k: interpolate_value(v, env, node) for k, v in value.items()}
    return value


def task_env(alloc: Allocation, tg: TaskGroup | None, task: Task, node: Node, dirs: TaskDirs,
             region: str, host_env: dict[str, str] | None = None) -> dict[str, str]:
    host = dict(os.environ if host_env is None else host_env)
    for key in WITHHELD:
        host.pop(key, None)
    env = {**host, **nomad_env(alloc, tg, task, node, dirs, region)}
    for key, value in (task.Env or {}).items():
        env[key] = interpolate(value, env, node)
    return env
