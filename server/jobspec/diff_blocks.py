"""Diffs of the blocks inside a group or task: resources and networks, services and
checks, vault, templates and artifacts (Nomad's ``nomad/structs/diff.go``)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from caravan.fsm.structs import NetworkResource, Port, Resources, Service, ServiceCheck, TaskArtifact, Template, Vault
from caravan.server.jobspec.diff_values import (
    content_key,
    field_diffs,
    flatten_primitive,
    full_map_diff,
    keyed_diffs,
    object_diff,
    presence_type,
    primitive_object_diff,
    sort_objects,
    string_set_diff,
)


def _port_diffs(old: list[Port] | None, new: list[Port] | None, dynamic: bool,
                contextual: bool) -> list[dict]:
    """Ports matched by label; a dynamic port's Value is assigned at placement so it
    is not part of the spec diff."""
    name = "Dynamic Port" if dynamic else "Static Port"
    skip = ("Value",) if dynamic else ()
    return keyed_diffs(
        old, new, lambda p: p.Label,
        lambda o, n: primitive_object_diff(o, n, name, contextual, skip)) or []


def _dns_diff(old: Any, new: Any, contextual: bool) -> dict | None:
    """DNS block: each list is shown as one comma-joined field."""
    if old == new:
        return None

    def flat(conf: Any) -> dict[str, str]:
        conf = conf if isinstance(conf, dict) else {}
        return {k: ",".join(conf[k]) for k in ("Servers", "Searches", "Options") if conf.get(k)}

    return object_diff(presence_type(old, new), "DNS",
                   field_diffs(flat(old), flat(new), contextual))


def _network_diff(old: NetworkResource | None, new: NetworkResource | None,
                  contextual: bool) -> dict | None:
    if old == new:
        return None
    skip = ("Device", "CIDR", "IP")
    fields = field_diffs(flatten_primitive(old, skip), flatten_primitive(new, skip), contextual)
    objects = _port_diffs(old and old.ReservedPorts, new and new.ReservedPorts, False, contextual)
    objects += _port_diffs(old and old.DynamicPorts, new and new.DynamicPorts, True, contextual)
    dns = _dns_diff(old and old.DNS, new and new.DNS, contextual)
    if dns is not None:
        objects.append(dns)
    return object_diff(presence_type(old, new), "Network", fields, objects)


def network_diffs(old: list[NetworkResource] | None, new: list[NetworkResource] | None,
                   contextual: bool) -> list[dict] | None:
    """Networks have no identity: they are matched by content, so any change shows as
    a Deleted network plus an Added one."""
    old_map = {content_key(n): n for n in old or ()}
    new_map = {content_key(n): n for n in new or ()}
    diffs = [_network_diff(o, None, contextual) for k, o in old_map.items() if k not in new_map]
    diffs += [_network_diff(None, n, contextual) for k, n in new_map.items() if k not in old_map]
    return sort_objects(diffs)


def _device_diff(old: Any, new: Any, contextual: bool) -> dict | None:
    if old == new:
        return None
    return object_diff(presence_type(old, new), "Device",
                   field_diffs(flatten_primitive(old), flatten_primitive(new), contextual))


def resources_diff(old: Resources | None, new: Resources | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = field_diffs(flatten_primitive(old), flatten_primitive(new), contextual)
    objects = list(network_diffs(old and old.Networks, new and new.Networks, contextual) or ())

    def devices(r: Resources | None) -> list:
        return [d for d in (r.Devices or ()) if isinstance(d, dict)] if r else []

    objects += keyed_diffs(devices(old), devices(new), lambda d: d.get("Name", ""),
                            lambda o, n: _device_diff(o, n, contextual)) or []
    return object_diff(presence_type(old, new), "Resources", fields, objects)


def _check_diff(old: ServiceCheck | None, new: ServiceCheck | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = field_diffs(flatten_primitive(old), flatten_primitive(new), contextual)
    objects = []
    header = full_map_diff(old and old.Header, new and new.Header, "Header", contextual)
    if header is not None:
        objects.append(header)
    return object_diff(presence_type(old, new), "Check", fields, objects)


def _service_diff(old: Service | None, new: Service | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = field_diffs(flatten_primitive(old), flatten_primitive(new), contextual)
    objects = []
    for set_name in ("CanaryTags", "Tags"):
        d = string_set_diff(getattr(old, set_name, None), getattr(new, set_name, None),
                             set_name, contextual)
        if d is not None:
            objects.append(d)
    objects += keyed_diffs(old and old.Checks, new and new.Checks, lambda c: c.Name,
                            lambda o, n: _check_diff(o, n, contextual)) or []
    return object_diff(presence_type(old, new), "Service", fields, objects)


def _find_service_match(svc: Service, index: int, candidates: list[Service],
                        taken: list[int]) -> int:
    """Services have no stable ID; Nomad pairs them by a score (same name 3, same port
    label 2, same position 1) and needs more than 2 points for a match."""
    best, best_score = -1, 0
    for i, cand in enumerate(candidates):
        if taken[i] >= 0:
            continue
        score = (1 if i == index else 0) + (2 if svc.PortLabel == cand.PortLabel else 0) \
            + (3 if svc.Name == cand.Name else 0)
        if score > 2 and score > best_score:
            best, best_score = i, score
    return best


def service_diffs(old: list[Service] | None, new: list[Service] | None,
                   contextual: bool) -> list[dict] | None:
    old, new = old or [], new or []
    if len(old) == 1 and len(new) == 1:
        d = _service_diff(old[0], new[0], contextual)
        return [d] if d else None
    taken = [-1] * len(new)
    diffs = []
    for i, svc in enumerate(old):
        j = _find_service_match(svc, i, new, taken)
        if j < 0:
            diffs.append(_service_diff(svc, None, contextual))
            continue
        taken[j] = i
        diffs.append(_service_diff(svc, new[j], contextual))
    diffs += [_service_diff(None, new[j], contextual) for j, m in enumerate(taken) if m < 0]
    return sort_objects(diffs)


def vault_diff(old: Vault | None, new: Vault | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = field_diffs(flatten_primitive(old), flatten_primitive(new), contextual)
    policies = string_set_diff(old and old.Policies, new and new.Policies, "Policies", contextual)
    return object_diff(presence_type(old, new), "Vault", fields, [policies] if policies else None)


def _template_diff(old: Template | None, new: Template | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = field_diffs(flatten_primitive(old), flatten_primitive(new), contextual)
    return object_diff(presence_type(old, new), "Template", fields)


def template_diffs(old: list[Template] | None, new: list[Template] | None,
                    contextual: bool) -> list[dict] | None:
    """Templates are matched by destination path (unique within a task); a lone
    template on each side is always compared with the other."""
    old, new = old or [], new or []
    if len(old) == 1 and len(new) == 1:
        d = _template_diff(old[0], new[0], contextual)
        return [d] if d else None
    taken = [False] * len(new)
    diffs = []
    for tmpl in old:
        j = next((i for i, n in enumerate(new) if not taken[i] and n.DestPath == tmpl.DestPath), -1)
        if j < 0:
            diffs.append(_template_diff(tmpl, None, contextual))
            continue
        taken[j] = True
        diffs.append(_template_diff(tmpl, new[j], contextual))
    diffs += [_template_diff(None, n, contextual) for i, n in enumerate(new) if not taken[i]]
    return sort_objects(diffs)


def artifact_key_fn(*lists: list[TaskArtifact] | None) -> Callable[[TaskArtifact], Any]:
    """Artifacts are matched by destination so an edited source reads as an edit; an
    empty or repeated destination (``local/`` is the default) falls back to content,
    otherwise one artifact would hide another."""
    seen: dict[str, int] = {}
    for lst in lists:
        per_list: dict[str, int] = {}
        for a in lst or ():
            per_list[a.RelativeDest or ""] = per_list.get(a.RelativeDest or "", 0) + 1
        for k, n in per_list.items():
            seen[k] = max(seen.get(k, 0), n)

    def key(a: TaskArtifact) -> Any:
        dest = a.RelativeDest or ""
        if dest and seen.get(dest) == 1:
            return ("dest", dest)
        return ("content", content_key(a))

    return key
