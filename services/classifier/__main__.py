"""`python -m services.classifier`: run the classifier until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import sys

from common.config import load_config
from common.errors import ConfigError
from common.logs import configure_logging
from common.server import run_until_signal
from services.classifier.app import ClassifierApp
from services.classifier.config import ClassifierConfig


def main() -> None:
    try:
        config = load_config(ClassifierConfig, env=os.environ)
    except ConfigError as exc:
        sys.exit(f"classifier: {exc}")
    configure_logging("classifier", config.log_level, config.log_format)
    asyncio.run(run_until_signal(ClassifierApp(config)))


if __name__ == "__main__":
    main()
