"""Datablocks on this worker (seed S7): a bounded LRU cache on local disk in front of the
artifact store.

Task inputs and outputs are named datablocks. Before a task runs, the worker stages its
inputs into the cache (a hit costs nothing, a miss fetches from the artifact store); the
slot then reads local files only. After it succeeds, its outputs are adopted into the
cache and published to the artifact store, whose URIs go back in the result. What the
cache holds is announced at registration and in every heartbeat, so the scheduler can
place a task where its inputs already are.

Constraints:
- Only the worker's parent process owns the cache bookkeeping; slot processes read the
  staged files and write outputs into the cache folder, nothing else.
- A block is stored as `<cache dir>/<id>.pt`; the id is the file's stem.
- Blocks pinned by a running task are never evicted; the size bound is restored as soon
  as they are unpinned (so it may be exceeded while one task needs more than the bound).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from prometheus_client import Counter, Gauge

from services.worker.model import BlockRef

log = logging.getLogger(__name__)

SUFFIX = ".pt"
__all__ = ["ArtifactStore", "BlockRef", "DatablockCache", "DatablockNotFound", "FileArtifactStore"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

HITS = Counter("switchyard_worker_datablock_cache_hits_total", "Input datablocks found in the local cache")
MISSES = Counter(
    "switchyard_worker_datablock_cache_misses_total", "Input datablocks fetched from the artifact store"
)
EVICTIONS = Counter("switchyard_worker_datablock_cache_evictions_total", "Datablocks evicted from the cache")
CACHED_BYTES = Gauge("switchyard_worker_datablock_cache_bytes", "Bytes of datablocks in the local cache")


class DatablockNotFound(Exception):
    """An input datablock is neither cached here nor in the artifact store."""

    def __init__(self, ref: str, detail: str = "") -> None:
        super().__init__(f"input datablock {ref!r} not found" + (f": {detail}" if detail else ""))
        self.ref = ref


def valid_block_id(block_id: str) -> bool:
    return bool(_ID.match(block_id)) and ".." not in block_id


class ArtifactStore(Protocol):
    """Where datablocks live beyond one worker (a shared folder now, S3-compatible later).

    Constraints: `fetch` raises DatablockNotFound when the block does not exist and writes
    `dest` completely or not at all; `publish` returns a URI that `fetch` accepts on any
    worker; both may be called from several threads at once.
    """

    def uri_for(self, block_id: str) -> str: ...

    def fetch(self, uri: str, dest: Path) -> int: ...

    def publish(self, block_id: str, src: Path) -> str: ...


class FileArtifactStore:
    """file:// URIs under a shared folder (`<artifact dir>/datablocks/<id>.pt`)."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "datablocks"

    def uri_for(self, block_id: str) -> str:
        return (self.folder / f"{block_id}{SUFFIX}").resolve().as_uri()

    def fetch(self, uri: str, dest: Path) -> int:
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme not in ("file", ""):
            raise DatablockNotFound(uri, f"scheme {parsed.scheme!r} is not served by the file store")
        src = Path(urllib.parse.unquote(parsed.path))
        if not src.is_file():
            raise DatablockNotFound(uri, "no such file in the artifact store")
        _copy_atomic(src, dest)
        return dest.stat().st_size

    def publish(self, block_id: str, src: Path) -> str:
        dest = self.folder / f"{block_id}{SUFFIX}"
        if dest.resolve() != src.resolve():
            self.folder.mkdir(parents=True, exist_ok=True)
            _copy_atomic(src, dest)
        return dest.resolve().as_uri()


def _copy_atomic(src: Path, dest: Path) -> None:
    """Copy through a temporary name, so a reader never sees half a block."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class DatablockCache:
    """A size-bounded LRU of datablock files in one local folder; thread-safe."""

    def __init__(self, folder: Path, capacity_bytes: int, store: ArtifactStore) -> None:
        self.folder = folder
        self.capacity_bytes = capacity_bytes
        self.store = store
        self._lock = threading.Lock()
        self._sizes: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self._pins: dict[str, int] = {}
        self.hits = self.misses = self.evictions = 0
        self._load()

    def _load(self) -> None:
        """Adopt blocks left by a previous run, oldest use first."""
        self.folder.mkdir(parents=True, exist_ok=True)
        files = [p for p in self.folder.glob(f"*{SUFFIX}") if valid_block_id(p.stem)]
        for path in sorted(files, key=lambda p: p.stat().st_mtime):
            self._sizes[path.stem] = path.stat().st_size
        with self._lock:
            self._evict()

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def ids(self) -> tuple[str, ...]:
        """Block ids held here, most recently used last."""
        with self._lock:
            return tuple(self._sizes)

    def __contains__(self, block_id: object) -> bool:
        return block_id in self._sizes

    def path(self, block_id: str) -> Path:
        return self.folder / f"{block_id}{SUFFIX}"

    def get(self, ref: BlockRef, *, pin: bool = False) -> Path:
        """The local file of a block: a hit, or a miss fetched from the artifact store."""
        block_id = ref.name
        if not valid_block_id(block_id):
            raise DatablockNotFound(ref.uri or ref.id, "not a valid datablock id")
        path = self.path(block_id)
        with self._lock:
            if block_id in self._sizes and path.is_file():
                self._sizes.move_to_end(block_id)
                self._touch(path)
                self.hits += 1
                HITS.inc()
                if pin:
                    self._pins[block_id] = self._pins.get(block_id, 0) + 1
                return path
            self._sizes.pop(block_id, None)
        self.misses += 1
        MISSES.inc()
        size = self.store.fetch(ref.uri or self.store.uri_for(block_id), path)
        self._admit(block_id, size, pin=pin)
        log.info("datablock fetched", extra={"datablock": block_id, "bytes": size})
        return path

    def adopt(self, block_id: str, *, pin: bool = False) -> Path:
        """Take a block that a slot wrote into the cache folder into the LRU."""
        path = self.path(block_id)
        self._admit(block_id, path.stat().st_size, pin=pin)
        return path

    def unpin(self, block_ids: Iterable[str]) -> None:
        with self._lock:
            for block_id in block_ids:
                left = self._pins.get(block_id, 0) - 1
                if left > 0:
                    self._pins[block_id] = left
                else:
                    self._pins.pop(block_id, None)
            self._evict()

    def _admit(self, block_id: str, size: int, *, pin: bool) -> None:
        with self._lock:
            self._sizes[block_id] = size
            self._sizes.move_to_end(block_id)
            if pin:
                self._pins[block_id] = self._pins.get(block_id, 0) + 1
            self._evict()

    def _evict(self) -> None:
        """Drop least recently used unpinned blocks until the bound holds (lock held)."""
        total = sum(self._sizes.values())
        for block_id in list(self._sizes):
            if total <= self.capacity_bytes:
                break
            if self._pins.get(block_id):
                continue
            total -= self._sizes.pop(block_id)
            self.path(block_id).unlink(missing_ok=True)
            self.evictions += 1
            EVICTIONS.inc()
            log.debug("datablock evicted", extra={"datablock": block_id})
        CACHED_BYTES.set(total)

    @staticmethod
    def _touch(path: Path) -> None:
        # The mtime orders blocks by last use when a restarted worker adopts its cache.
        with contextlib.suppress(OSError):
            os.utime(path)
