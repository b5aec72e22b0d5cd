"""`python -m services.profile_store`: run the profile store until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os

from common.config import load_config
from common.logs import configure_logging
from common.server import run_until_signal
from services.profile_store.app import ProfileStoreApp
from services.profile_store.config import ProfileStoreConfig


def main() -> None:
    config = load_config(ProfileStoreConfig, env=os.environ)
    configure_logging("profile_store", config.log_level, config.log_format)
    asyncio.run(run_until_signal(ProfileStoreApp(config)))


if __name__ == "__main__":
    main()
