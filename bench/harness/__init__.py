"""bench/run's groups. Each group module exposes run(ctx) -> dict (its machine-readable results)."""
