"""The scheduling policy: pure Python, no grpc, no sqlalchemy, an injected clock.

The scheduler service drives it with live state; a simulator drives it with replayed
traces. `cycle.plan_cycle` is the entry point.
"""
