"""One active scheduler: leadership is a lock held for the life of the process.

On PostgreSQL it is a session advisory lock on a connection of its own (it goes when the
session goes, so a standby takes over within moments of the leader dying); on SQLite, an
exclusive `flock` on a file beside the database. A standby waits, reporting NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from common.db import is_postgres

log = logging.getLogger(__name__)
LOCK_KEY = 0x5357_5944  # "SWYD": the scheduler's advisory lock id


class Leadership:
    def __init__(self, url: str, engine: AsyncEngine, *, poll_s: float = 0.5) -> None:
        self.url = url
        self.engine = engine
        self.poll_s = poll_s
        self._conn: AsyncConnection | None = None
        self._file: Any = None
        self.lost = asyncio.Event()
        self._abandoned = asyncio.Event()

    async def acquire(self) -> bool:
        """Wait until this process is the leader (True) or `abandon` was called (False).

        Never cancelled half-way through a query: a stop asks through `abandon` instead.
        """
        announced = False
        while not await self._try():
            if not announced:
                log.info("another scheduler is active: waiting as a standby")
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._abandoned.wait(), self.poll_s)
            if self._abandoned.is_set():
                return False
        log.info("became the active scheduler")
        return True

    def abandon(self) -> None:
        self._abandoned.set()

    async def _try(self) -> bool:
        if is_postgres(self.url):
            if self._conn is None:
                self._conn = await self.engine.connect()
            got = (
                await self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
            ).scalar()
            await self._conn.commit()
            return bool(got)
        path = _lock_path(self.url)
        if self._file is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()
        return True

    async def watch(self) -> None:
        """Check the lock's session now and then; set `lost` if it broke (PostgreSQL)."""
        while self._conn is not None:
            await asyncio.sleep(2.0)
            try:
                await self._conn.execute(sa.text("SELECT 1"))
                await self._conn.commit()
            except Exception as exc:  # the session (and with it the lock) is gone
                log.error("lost the leadership lock's database session: %r", exc)
                self.lost.set()
                return

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _lock_path(url: str) -> Path:
    database = make_url(url).database or "scheduler.db"
    return Path(f"{database}.leader")
