"""The long nemesis runs take minutes: they run with ``-m slow`` (or with
``NEMESIS_SECONDS`` set), never as part of a plain ``python3 -m pytest -q``."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.option.markexpr or "") or os.environ.get("NEMESIS_SECONDS"):
        return
    skip = pytest.mark.skip(reason="long nemesis run: use -m slow or NEMESIS_SECONDS=N")
    for item in items:
        if item.get_closest_marker("slow") and HERE in Path(item.fspath).resolve().parents:
            item.add_marker(skip)
