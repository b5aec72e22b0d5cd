"""The systems `bench.compare` measures side by side, one module each: Switchyard (the
whole mesh), Ray, and Celery on Redis.

Ray and Celery are imported lazily, inside the functions that need them, so
`switchyard_bench` (and the smoke test that drives it) never needs the bench extra.
"""
