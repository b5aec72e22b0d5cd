"""python -m services.classifier"""

from __future__ import annotations

from common.server import service_main
from services.classifier.app import ClassifierApp
from services.classifier.config import ClassifierConfig

if __name__ == "__main__":
    service_main("classifier", ClassifierConfig, ClassifierApp)
