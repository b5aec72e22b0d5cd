"""python -m services.profile_store"""

from __future__ import annotations

from common.server import service_main
from services.profile_store.app import ProfileStoreApp
from services.profile_store.config import ProfileStoreConfig

if __name__ == "__main__":
    service_main("profile_store", ProfileStoreConfig, ProfileStoreApp)
