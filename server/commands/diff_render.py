"""A job diff (``/plan`` with ``Diff: true``, ``/versions?diffs=true``) in Nomad's
``+``/``-``/``+/-`` notation, coloured: green added, red deleted, yellow edited."""
from __future__ import annotations

from rich.text import Text

from caravan.server.commands.output import out

MARK = {"Added": ("+", "green"), "Deleted": ("-", "red"), "Edited": ("+/-", "yellow"),
        "None": ("", "")}

# DesiredTGUpdates counters -> Nomad's words for a group's annotation
UPDATE_WORDS = (("Place", "create"), ("Stop", "destroy"), ("Migrate", "migrate"),
                ("InPlaceUpdate", "in-place update"), ("Ignore", "ignore"),
                ("DestructiveUpdate", "create/destroy update"), ("Canary", "canary"))


def _line(indent: int, kind: str, text: str) -> None:
    mark, style = MARK.get(kind, ("", ""))
    prefix = " " * indent + (mark + " " if mark else "  ")
    out.print(Text(prefix + text, style=style))


def _fields(fields, indent: int, verbose: bool) -> None:
    for f in fields or ():
        if f["Type"] == "None" and not verbose:
            continue
        if f["Type"] == "Added":
            value = f'"{f["New"]}"'
        elif f["Type"] == "Deleted":
            value = f'"{f["Old"]}"'
        elif f["Type"] == "Edited":
            value = f'"{f["Old"]}" => "{f["New"]}"'
        else:
            value = f'"{f["New"]}"'
        notes = f' ({", ".join(f["Annotations"])})' if f.get("Annotations") else ""
        _line(indent, f["Type"], f"{f['Name']}: {value}{notes}")


def _objects(objects, indent: int, verbose: bool) -> None:
    for o in objects or ():
        if o["Type"] == "None" and not verbose:
            continue
        _line(indent, o["Type"], f"{o['Name']} {{")
        _fields(o.get("Fields"), indent + 2, verbose)
        _objects(o.get("Objects"), indent + 2, verbose)
        out.print(" " * (indent + 2) + "}")


def group_annotation(updates: dict | None) -> str:
    words = [f"{updates[key]} {word}" for key, word in UPDATE_WORDS
             if updates and updates.get(key)]
    return f" ({', '.join(words)})" if words else ""


def render_job_diff(diff: dict, tg_updates: dict | None = None, verbose: bool = False) -> None:
    _line(0, diff["Type"], f'Job: "{diff.get("ID", "")}"')
    _fields(diff.get("Fields"), 0, verbose)
    _objects(diff.get("Objects"), 0, verbose)
    for tg in diff.get("TaskGroups") or ():
        updates = (tg_updates or {}).get(tg["Name"])
        if tg["Type"] == "None" and not verbose and not updates:
            continue
        _line(0, tg["Type"], f'Task Group: "{tg["Name"]}"{group_annotation(updates)}')
        _fields(tg.get("Fields"), 2, verbose)
        _objects(tg.get("Objects"), 2, verbose)
        for task in tg.get("Tasks") or ():
            if task["Type"] == "None" and not verbose:
                continue
            notes = f' ({", ".join(task["Annotations"])})' if task.get("Annotations") else ""
            _line(2, task["Type"], f'Task: "{task["Name"]}"{notes}')
            _fields(task.get("Fields"), 4, verbose)
            _objects(task.get("Objects"), 4, verbose)
