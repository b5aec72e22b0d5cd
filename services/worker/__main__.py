"""`python -m services.worker [--device cpu|cuda[:N]] [--port N]`"""

from __future__ import annotations

import argparse
import asyncio
import os

from common.config import load_config
from common.logs import configure_logging
from common.server import run_until_signal
from services.worker.app import WorkerApp
from services.worker.config import WorkerConfig


async def main(config: WorkerConfig) -> None:
    # The app (and its grpc.aio server) must be built inside the running loop.
    await run_until_signal(WorkerApp(config))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="switchyard-worker")
    parser.add_argument("--device", help="cpu, cuda or cuda:N")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    config = load_config(WorkerConfig, env=os.environ, overrides=overrides)
    configure_logging("worker", config.log_level, config.log_format)
    asyncio.run(main(config))
