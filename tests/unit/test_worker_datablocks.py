"""The local datablock cache (LRU, size bound, pins), the file artifact store, staging."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.worker.datablocks import DatablockCache, DatablockNotFound, FileArtifactStore
from services.worker.model import BlockRef, HandlerResult, TaskInput
from services.worker.staging import Staging


def publish(store: FileArtifactStore, tmp_path: Path, block_id: str, size: int) -> str:
    src = tmp_path / f"src-{block_id}.pt"
    src.write_bytes(b"x" * size)
    return store.publish(block_id, src)


@pytest.fixture
def store(tmp_path: Path) -> FileArtifactStore:
    return FileArtifactStore(tmp_path / "shared")


def cache_of(tmp_path: Path, store: FileArtifactStore, capacity: int = 1000) -> DatablockCache:
    return DatablockCache(tmp_path / "cache", capacity, store)


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_miss_fetches_then_hit_serves_locally(tmp_path: Path, store: FileArtifactStore) -> None:
    uri = publish(store, tmp_path, "a", 100)
    cache = cache_of(tmp_path, store)
    hits, misses = (
        metric("switchyard_worker_datablock_cache_hits_total"),
        metric("switchyard_worker_datablock_cache_misses_total"),
    )
    path = cache.get(BlockRef(uri=uri))
    assert path == tmp_path / "cache" / "a.pt" and path.read_bytes() == b"x" * 100
    assert (cache.hits, cache.misses) == (0, 1)
    Path(uri.removeprefix("file://")).unlink()  # the store no longer has it: must be a hit
    assert cache.get(BlockRef(id="a")) == path
    assert (cache.hits, cache.misses) == (1, 1)
    assert metric("switchyard_worker_datablock_cache_hits_total") == hits + 1
    assert metric("switchyard_worker_datablock_cache_misses_total") == misses + 1
    assert cache.ids() == ("a",)


def test_a_bare_id_is_fetched_from_the_stores_own_location(tmp_path: Path, store: FileArtifactStore) -> None:
    publish(store, tmp_path, "by-id", 10)
    cache = cache_of(tmp_path, store)
    assert cache.get(BlockRef(id="by-id")).read_bytes() == b"x" * 10


def test_missing_block_names_the_reference(tmp_path: Path, store: FileArtifactStore) -> None:
    cache = cache_of(tmp_path, store)
    with pytest.raises(DatablockNotFound) as err:
        cache.get(BlockRef(id="nowhere"))
    assert "nowhere" in str(err.value) and cache.ids() == ()
    with pytest.raises(DatablockNotFound):
        cache.get(BlockRef(id="../escape"))
    with pytest.raises(DatablockNotFound):
        cache.get(BlockRef(uri="s3://bucket/key.pt"))


def test_least_recently_used_is_evicted_first_within_the_bound(
    tmp_path: Path, store: FileArtifactStore
) -> None:
    uris = {name: publish(store, tmp_path, name, 400) for name in "abcd"}
    cache = cache_of(tmp_path, store, capacity=1000)
    cache.get(BlockRef(uri=uris["a"]))
    cache.get(BlockRef(uri=uris["b"]))
    cache.get(BlockRef(id="a"))  # a is now more recent than b
    cache.get(BlockRef(uri=uris["c"]))  # 1200 > 1000: b goes
    assert cache.ids() == ("a", "c") and cache.size_bytes == 800
    assert not (tmp_path / "cache" / "b.pt").exists()
    cache.get(BlockRef(uri=uris["d"]))
    assert cache.ids() == ("c", "d") and cache.evictions == 2
    assert sorted(p.stem for p in (tmp_path / "cache").glob("*.pt")) == ["c", "d"]


def test_pinned_blocks_survive_until_unpinned(tmp_path: Path, store: FileArtifactStore) -> None:
    uris = {name: publish(store, tmp_path, name, 600) for name in "ab"}
    cache = cache_of(tmp_path, store, capacity=1000)
    cache.get(BlockRef(uri=uris["a"]), pin=True)
    cache.get(BlockRef(uri=uris["b"]), pin=True)
    assert cache.ids() == ("a", "b")  # over the bound while a task needs both
    cache.unpin(["a"])
    assert cache.ids() == ("b",) and cache.size_bytes <= 1000


def test_a_restarted_worker_adopts_its_cache(tmp_path: Path, store: FileArtifactStore) -> None:
    uris = {name: publish(store, tmp_path, name, 300) for name in "ab"}
    first = cache_of(tmp_path, store)
    first.get(BlockRef(uri=uris["a"]))
    first.get(BlockRef(uri=uris["b"]))
    again = cache_of(tmp_path, store, capacity=400)
    assert len(again.ids()) == 1 and again.size_bytes == 300


def test_staging_gives_local_paths_and_fails_naming_the_missing_input(
    tmp_path: Path, store: FileArtifactStore
) -> None:
    uri = publish(store, tmp_path, "present", 5)
    staging = Staging(cache_of(tmp_path, store))
    task = TaskInput(
        task_id="t1", category="noop", inputs=(uri,), input_blocks=(BlockRef(id="present", uri=uri),)
    )
    staged = asyncio.run(staging.prepare(task))
    assert staged.inputs == (str(tmp_path / "cache" / "present.pt"),)
    staging.release(staged)
    missing = TaskInput(
        task_id="t2",
        category="noop",
        input_blocks=(BlockRef(id="present"), BlockRef(id="absent-block")),
    )
    with pytest.raises(DatablockNotFound) as err:
        asyncio.run(staging.prepare(missing))
    assert "absent-block" in str(err.value)
    staging.cache.unpin(["present"])  # nothing was left pinned by the failed staging
    assert not staging.cache._pins


def test_outputs_are_adopted_and_published(tmp_path: Path, store: FileArtifactStore) -> None:
    cache = cache_of(tmp_path, store)
    staging = Staging(cache)
    written = cache.path("out-1")
    written.write_bytes(b"result")
    task = TaskInput(task_id="t3", category="noop", outputs=("out-1", "never-written"))
    result = asyncio.run(staging.publish(task, HandlerResult(artifact_path=str(written), items=1)))
    uri = store.uri_for("out-1")
    assert result.summary["outputs"] == {"out-1": uri}
    assert result.artifact_uri == uri and result.artifact_path == ""
    assert Path(uri.removeprefix("file://")).read_bytes() == b"result"
    assert cache.ids() == ("out-1",)
