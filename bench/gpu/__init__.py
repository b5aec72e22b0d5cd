"""The parts of `make gpu-check` (bench/gpu_check.py is its command line; docs/gpu.md).

- `results`: the figures, as frozen dataclasses;
- `sampler`: busy fractions sampled on a thread (NVML for a GPU, process CPU time for the CPU);
- `measure`: synthetic data, inference and the saturating run, timed;
- `mesh_run`: a short run of the whole mesh, checking placement and the profile store;
- `report`: the Markdown report;
- `carry`: the wheels a lent GPU machine lacks, chosen and installed with the standard library.

Only `measure` imports torch and the worker at import time; `carry` needs nothing installed.
"""
