from common.migrate_env import run
from services.scheduler.schema import metadata

run(metadata)
