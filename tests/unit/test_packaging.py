"""pyproject.toml lists every package of the rooms, so a new subpackage cannot be left
out of the wheel (``tests/test_install.py`` installs it)."""
from __future__ import annotations

import tomllib

from tests.procs import ROOT

ROOMS = ("fsm", "scheduler", "client", "server", "proto")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_folder_with_an_init_under_the_rooms_is_a_listed_package():
    config = _setuptools()
    on_disk = {"caravan"}
    for room in ROOMS:
        for init in (ROOT / room).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            on_disk.add(".".join(("caravan", *parts)))
    listed = set(config["packages"])
    assert not on_disk - listed, f"missing from [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert not listed - on_disk, f"listed but not on disk: {sorted(listed - on_disk)}"


def test_each_room_maps_to_its_folder():
    assert _setuptools()["package-dir"] == {"caravan": "caravan",
                                             **{f"caravan.{room}": room for room in ROOMS}}
