"""`python -m services.worker [--device cpu|cuda[:N]] [--port N]`"""

from __future__ import annotations

import argparse

from common.server import service_main
from services.worker.app import WorkerApp
from services.worker.config import WorkerConfig

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.worker")
    parser.add_argument("--device", help="cpu, cuda or cuda:N")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    service_main(
        "worker", WorkerConfig, WorkerApp, overrides={k: v for k, v in vars(args).items() if v is not None}
    )
