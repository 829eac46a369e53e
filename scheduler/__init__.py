"""Leader-side scheduling (eval broker, workers, reconciler, plan applier).

Not built yet: the replicated core lands first. Evaluations created by the Jobs API
stay ``pending`` until the scheduler exists; nothing here pretends otherwise.
"""
