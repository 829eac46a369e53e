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
  young=N     gen-0 threshold of the cyclic collector (CPython's default: 700)
  switch=S    sys.setswitchinterval(S) in the servers (CPython's default: 0.005 s)
  countsends  every 5 s, print to the server's log (stderr) how many raft messages of
           each kind it sent and how many group-commit rounds carried how many writes
           (changes nothing)

Until the ``sys.path`` line below, this file could not import Caravan's modules in the
servers (``python -m`` adds the checkout to ``sys.path`` after site ran), so earlier
``inflight=N`` comparisons measured the default twice.

Example:  CARAVAN_WHATIF=uvloop,nogc PYTHONPATH=bench/whatif python3 bench/register.py
"""
import os
import sys

_knobs = {k.strip() for k in os.environ.get("CARAVAN_WHATIF", "").split(",") if k.strip()}
_argv = " ".join(getattr(sys, "orig_argv", sys.argv))
if _knobs and "caravan" in _argv:
    # ``python -m`` puts the working directory (the checkout) on sys.path only after
    # site-packages ran this file; the knobs below import Caravan modules now
    sys.path.insert(0, os.getcwd())
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
        if knob.startswith("young="):
            # the collector's gen-0 threshold (CPython's default: 700); set again after
            # the agent's own gc set-up, which keeps the young and middle thresholds
            import gc
            gc.set_threshold(int(knob.split("=", 1)[1]), *gc.get_threshold()[1:])
        if knob.startswith("switch="):
            # the GIL switch interval (seconds; CPython's default is 0.005)
            sys.setswitchinterval(float(knob.split("=", 1)[1]))
        if knob.startswith("inflight="):
            # group commit: how many raft rounds may be under way at once
            import caravan.server.group_commit as _gc
            _n = int(knob.split("=", 1)[1])
            _orig_init = _gc.GroupCommit.__init__

            def _init(self, submit_one, *, _orig=_orig_init, _n=_n, **kw):
                kw["max_inflight"] = _n
                _orig(self, submit_one, **kw)
            _gc.GroupCommit.__init__ = _init
    if "countsends" in _knobs:
        # every 5 s, log how many raft messages of each kind the server sent, their
        # bytes after pickling, and how many rounds group commit made
        import collections
        import threading
        import time as _time

        _counts = collections.Counter()
        # counted where they leave: below _Transport.send, which may hold some back
        from pysyncobj.transport import TCPTransport as _TCP
        _orig_send = _TCP.send

        _highest: dict = {}   # node -> highest entry index sent to it

        def _send(self, node, message, _orig=_orig_send):
            kind = message.get("type") if isinstance(message, dict) else "?"
            entries = (message.get("entries") or ()) if isinstance(message, dict) else ()
            n = len(entries)
            _counts[(kind, "empty" if not n and kind == "append_entries" else "")] += 1
            if n:
                key = str(node)
                top = _highest.get(key, 0)
                _counts[("entries", "resent")] += sum(1 for x in entries if x[1] <= top)
                _counts[("entries", "sent")] += n
                _highest[key] = max(top, entries[-1][1])
            return _orig(self, node, message)
        _TCP.send = _send

        import caravan.server.group_commit as _gcm
        _groups = []
        _orig_gc_init = _gcm.GroupCommit.__init__

        def _gc_init(self, *a, _orig=_orig_gc_init, **kw):
            _orig(self, *a, **kw)
            _groups.append(self)
        _gcm.GroupCommit.__init__ = _gc_init

        def _report():
            last = (0, 0)
            while True:
                _time.sleep(5)
                rounds = sum(g.rounds for g in _groups)
                entries = sum(g.entries for g in _groups)
                print("COUNTSENDS", dict(_counts), "group rounds", rounds - last[0],
                      "entries", entries - last[1], flush=True, file=sys.stderr)
                last = (rounds, entries)
                _counts.clear()
        threading.Thread(target=_report, daemon=True).start()
