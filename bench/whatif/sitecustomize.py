"""What-if knobs for bench/register.py, for analysis only (not how Caravan runs).

Python imports ``sitecustomize`` at start-up from ``sys.path``; with
``PYTHONPATH=bench/whatif`` this file runs in every Python process the benchmark starts,
and acts only in Caravan server processes (``python -m server.cli agent ...``), so the
baselines stay as they are. Knobs, comma-separated in CARAVAN_WHATIF:

  uvloop   install uvloop's event loop policy, so ``asyncio.run`` in server/cli.py runs
           Caravan on uvloop instead of the stdlib loop (uvicorn only picks uvloop itself
           in ``uvicorn.run``/``Server.run``, which Caravan does not call)
  nogc     disable the cyclic garbage collector (reference counting still frees almost
           everything; only for a bounded benchmark run)
  freeze   keep the collector but raise the gen-0 threshold to 50,000 allocations
  inflight=N  group commit: N raft rounds under way at once (default 1)

Example:  CARAVAN_WHATIF=uvloop,nogc PYTHONPATH=bench/whatif python3 bench/register.py
"""
import os
import sys

_knobs = {k.strip() for k in os.environ.get("CARAVAN_WHATIF", "").split(",") if k.strip()}
_argv = " ".join(getattr(sys, "orig_argv", sys.argv))
if _knobs and "server.cli" in _argv:
    if "uvloop" in _knobs:
        import uvloop
        uvloop.install()
    if "nogc" in _knobs:
        import gc
        gc.disable()
    if "freeze" in _knobs:
        import gc
        gc.set_threshold(50_000, 20, 20)
    for knob in _knobs:
        if knob.startswith("inflight="):
            # group commit: how many raft rounds may be under way at once
            import server.group_commit as _gc
            _n = int(knob.split("=", 1)[1])
            _orig_init = _gc.GroupCommit.__init__

            def _init(self, submit_one, *, _orig=_orig_init, _n=_n, **kw):
                kw["max_inflight"] = _n
                _orig(self, submit_one, **kw)
            _gc.GroupCommit.__init__ = _init
