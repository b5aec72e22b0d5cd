"""python -m services.scheduler"""

from __future__ import annotations

from common.server import service_main
from services.scheduler.app import SchedulerApp
from services.scheduler.config import SchedulerConfig

if __name__ == "__main__":
    service_main("scheduler", SchedulerConfig, SchedulerApp)
