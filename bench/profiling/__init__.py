"""Bench-only: put this directory first on a process's PYTHONPATH, with
SWITCHYARD_BENCH_PROFILE_DIR set, and its `sitecustomize` makes the process profilable by
signal (see `sitecustomize.py`). Nothing in the services imports it.
"""
