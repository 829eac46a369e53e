"""Leader-side scheduling: eval broker, workers, reconciler, feasibility and ranking,
plan applier. Pure stages (reconcile, feasible, rank, ports, stack, generic) take a
state snapshot and an injected random source; the broker, worker and plan applier
move their results around on the leader (started by ``server/leader.py``).
"""
