"""Caravan: a job scheduler that speaks HashiCorp Nomad's HTTP API.

One installed package, ``caravan``, whose rooms keep their folders at the top of the
repository (``fsm/``, ``scheduler/``, ``client/``, ``server/``, ``proto/``);
``pyproject.toml`` maps each folder to ``caravan.<folder>`` when the package is built.
In a source checkout (a clone, a worktree, an editable install) those folders sit
beside this one, so the package's search path is extended to the checkout's root: the
code that runs is always the code of the checkout it was started from."""
from pathlib import Path as _Path

_root = _Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "fsm" / "__init__.py").is_file():
    __path__.append(str(_root))  # type: ignore[name-defined]  # noqa: F821
del _Path, _root
