"""python -m services.scheduler"""

from __future__ import annotations

import asyncio
import os

from common.config import load_config
from common.logs import configure_logging
from common.server import run_until_signal
from services.scheduler.app import SchedulerApp
from services.scheduler.config import SchedulerConfig


async def main() -> None:
    config = load_config(SchedulerConfig, env=os.environ)
    configure_logging("scheduler", config.log_level, config.log_format)
    await run_until_signal(SchedulerApp(config))


if __name__ == "__main__":
    asyncio.run(main())
