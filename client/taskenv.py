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
from typing import TYPE_CHECKING

import msgspec

from caravan.fsm.structs import Allocation, NetworkResource, Node, Port, Service, ServiceCheck, Task, TaskGroup

if TYPE_CHECKING:
    from caravan.client.drivers.base import TaskDirs

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


def networks(alloc: Allocation, task: Task):
    """The task's networks and the group's shared ones, with their ports."""
    res = (alloc.TaskResources or {}).get(task.Name)
    nets = list(res.Networks or ()) if res is not None else []
    if alloc.SharedResources is not None:
        nets += list(alloc.SharedResources.Networks or ())
    return nets


def _ports(net: NetworkResource) -> list[Port]:
    return [*(net.ReservedPorts or ()), *(net.DynamicPorts or ())]


def join_host_port(ip: str, port: int | str) -> str:
    """Go's ``net.JoinHostPort``: an IPv6 address is bracketed."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def driver_port_map(task: Task) -> dict[str, int]:
    """The docker driver's deprecated ``port_map`` (label -> port inside the
    container), the only driver network Caravan's drivers define; HCL blocks arrive as a
    list of maps."""
    if task.Driver != "docker":
        return {}
    raw = (task.Config or {}).get("port_map") or {}
    if isinstance(raw, list):
        raw = {k: v for m in raw if isinstance(m, dict) for k, v in m.items()}
    out = {}
    for label, port in raw.items() if isinstance(raw, dict) else ():
        try:
            out[str(label)] = int(port)
        except (TypeError, ValueError):
            continue
    return out


def port_env(alloc: Allocation, task: Task) -> dict[str, str]:
    """Nomad 1.x's port variables (``client/taskenv/env.go``), in its order, later
    writers winning:

    - the task's own (deprecated) networks: ``NOMAD_IP_``, ``NOMAD_HOST_PORT_`` and
      ``NOMAD_ADDR_`` with the host's address and port; ``NOMAD_PORT_`` is the driver's
      port map entry when there is one, else the host port;
    - the other tasks' networks: ``NOMAD_{ADDR,IP,PORT}_<task>_<label>`` (host values);
    - the group network: ``NOMAD_HOST_PORT_`` is the host port; ``NOMAD_PORT_`` and
      ``NOMAD_ALLOC_PORT_`` are ``To`` when it is set (> 0), else the host port;
      ``NOMAD_IP_``, ``NOMAD_HOST_IP_``, ``NOMAD_ADDR_`` and ``NOMAD_HOST_ADDR_`` are
      the host's address and port.
    """
    env: dict[str, str] = {}
    port_map = driver_port_map(task)
    tasks = alloc.TaskResources or {}
    own = tasks.get(task.Name)
    for net in (own.Networks or ()) if own is not None else ():
        for port in _ports(net):
            label, value = port.Label, str(port.Value)
            env[f"NOMAD_IP_{label}"] = net.IP
            env[f"NOMAD_HOST_PORT_{label}"] = value
            env[f"NOMAD_ADDR_{label}"] = join_host_port(net.IP, value)
            env[f"NOMAD_PORT_{label}"] = str(port_map[label]) if port_map.get(label) else value
    for name, res in sorted(tasks.items()):
        if name == task.Name or res is None:
            continue
        for net in res.Networks or ():
            for port in _ports(net):
                key = f"{name}_{port.Label}"
                env[f"NOMAD_ADDR_{key}"] = join_host_port(net.IP, port.Value)
                env[f"NOMAD_IP_{key}"] = net.IP
                env[f"NOMAD_PORT_{key}"] = str(port.Value)
    shared = alloc.SharedResources
    for net in (shared.Networks or ()) if shared is not None else ():
        for port in _ports(net):
            env[f"NOMAD_PORT_{port.Label}"] = str(port.To if port.To > 0 else port.Value)
            env[f"NOMAD_HOST_PORT_{port.Label}"] = str(port.Value)
    for p in alloc.shared_ports():
        addr = join_host_port(p.HostIP, p.Value)
        env[f"NOMAD_ADDR_{p.Label}"] = addr
        env[f"NOMAD_HOST_ADDR_{p.Label}"] = addr
        env[f"NOMAD_IP_{p.Label}"] = p.HostIP
        env[f"NOMAD_HOST_IP_{p.Label}"] = p.HostIP
        inner = str(p.To if p.To > 0 else p.Value)
        env[f"NOMAD_PORT_{p.Label}"] = inner
        env[f"NOMAD_ALLOC_PORT_{p.Label}"] = inner
    return env


# Keys under these prefixes get characters an environment variable cannot hold
# replaced by "_" once the environment is built (hashicorp/nomad#2405).
_CLEANED_PREFIXES = ("NOMAD_ADDR_", "NOMAD_IP_", "NOMAD_PORT_", "NOMAD_HOST_PORT_",
                     "NOMAD_META_")
_UNCLEAN = re.compile(r"[^A-Za-z0-9_.]")


def clean_env_var(name: str) -> str:
    """``helper.CleanEnvVar(name, '_')``: letters, digits (not first), ``_`` and ``.``
    are kept; anything else becomes ``_``."""
    out = _UNCLEAN.sub("_", name)
    return "_" + out[1:] if out[:1].isdigit() else out


def clean_keys(env: dict[str, str]) -> dict[str, str]:
    return {clean_env_var(k) if k.startswith(_CLEANED_PREFIXES) else k: v
            for k, v in env.items()}


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
    return clean_keys(env)


def interpolate_service(svc: Service, env: dict[str, str], node: Node) -> Service:
    """Nomad's ``InterpolateService``: the service's name, port label, tags and meta,
    and its checks' names, commands, arguments, paths, protocols, port labels,
    methods and headers, with the task's environment."""
    def s(text: str) -> str:
        return interpolate(text, env, node) if text else text

    def strings(items):
        return [s(x) for x in items] if items is not None else None

    def check(c: ServiceCheck) -> ServiceCheck:
        header = {s(k): strings(v) for k, v in c.Header.items()} \
            if c.Header is not None else None
        return msgspec.structs.replace(
            c, Name=s(c.Name), Type=s(c.Type), Command=s(c.Command), Args=strings(c.Args),
            Path=s(c.Path), Protocol=s(c.Protocol), PortLabel=s(c.PortLabel),
            InitialStatus=s(c.InitialStatus), Method=s(c.Method), Header=header)

    return msgspec.structs.replace(
        svc, Name=s(svc.Name), PortLabel=s(svc.PortLabel), Tags=strings(svc.Tags),
        CanaryTags=strings(svc.CanaryTags),
        Meta={s(k): s(v) for k, v in svc.Meta.items()} if svc.Meta is not None else None,
        Checks=[check(c) for c in svc.Checks] if svc.Checks is not None else None)
