"""Load testing with Locust: open-model shopper arrivals, a user pool, sharded workers.

Layout (only the modules marked *Locust* import locust; import them after ``import locust``):

- :mod:`~generator.load.schedule` — shopper jobs: when each shopper is due, what it sends when;
- :mod:`~generator.load.source` — simulate + fault-plan one shard of shoppers into jobs;
- :mod:`~generator.load.session` — per-process runtime: producer, queue, replay, ledger, lag;
- :mod:`~generator.load.outcome` — what a response means for the events it carried;
- :mod:`~generator.load.lag` — mergeable arrival-lag histograms;
- :mod:`~generator.load.shard` — which shoppers a worker simulates;
- :mod:`~generator.load.messages` — worker → master messages and the master's collector;
- :mod:`~generator.load.plugin` (*Locust*) — options, listeners, roles;
- :mod:`~generator.load.users` (*Locust*) — ``ShopperUser``, the FastHttpUser pool;
- :mod:`~generator.load.runner` — ``shopsim load``: Locust subprocesses (stand-alone, master +
  local workers, remote master/worker);
- :mod:`~generator.load.stats` — Locust's JSON/CSV results → latency, error rate, throughput;
- :mod:`~generator.load.check` — the end-to-end check on what was really sent (ledger join),
  through :func:`generator.pipeline.evaluate` like ``shopsim run``.

This package's ``__init__`` imports nothing, so ``shopsim load`` (which runs Locust in
subprocesses) never imports Locust — and never monkey-patches — in its own process.
"""
