import os
import time

import numpy as np
import pytest

from tlcore.cache import ORPHAN_GRACE_SECONDS, ArrayCache, cache_key
from tlcore.errors import WorkspaceError


def test_hit_miss_and_stats(tmp_path):
    c = ArrayCache(tmp_path)
    calls = []
    make = lambda: calls.append(1) or np.arange(10, dtype=np.float16)  # noqa: E731
    a = c.get_or_create({"k": 1}, make)
    b = c.get_or_create({"k": 1}, make)
    assert len(calls) == 1 and (a == b).all() and b.dtype == np.float16
    assert c.stats.hits == 1 and c.stats.misses == 1
    # A new instance (another process) sees the entry.
    assert ArrayCache(tmp_path).get({"k": 1}) is not None
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "bad_meta", "no_data"])
def test_corrupt_entries_are_rebuilt(tmp_path, damage):
    c = ArrayCache(tmp_path, mmap=False)
    c.put({"k": 1}, np.arange(1000, dtype=np.int32))
    key = cache_key({"k": 1})
    data, meta = tmp_path / f"{key}.npy", tmp_path / f"{key}.json"
    raw = bytearray(data.read_bytes())
    if damage == "flip_byte":
        raw[-5] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "truncate":
        data.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "bad_meta":
        meta.write_text("{")
    else:
        data.unlink()
    assert c.get({"k": 1}) is None
    rebuilt = c.get_or_create({"k": 1}, lambda: np.arange(1000, dtype=np.int32))
    assert (rebuilt == np.arange(1000)).all()
    assert c.get({"k": 1}) is not None


def test_lru_eviction_under_budget(tmp_path):
    c = ArrayCache(tmp_path, budget_bytes=3500)
    for i in range(3):
        c.put({"i": i}, np.zeros(1000, np.uint8))
    c.get({"i": 0})  # touch 0 -> 1 is now least recently used
    os.utime(tmp_path / f"{cache_key({'i': 1})}.json", (time.time() - 100, time.time() - 100))
    c.put({"i": 3}, np.zeros(1000, np.uint8))
    assert c.get({"i": 1}) is None
    assert c.get({"i": 0}) is not None and c.get({"i": 3}) is not None
    assert c.stats.evicted >= 1
    assert c.size_bytes() <= 3500 + 4 * 128  # npy headers


def test_entry_larger_than_budget_is_not_stored(tmp_path):
    c = ArrayCache(tmp_path, budget_bytes=100)
    out = c.put({"big": 1}, np.zeros(1000, np.uint8))
    assert out.shape == (1000,) and c.entries() == []


def test_meta_lists_parts(tmp_path):
    c = ArrayCache(tmp_path)
    c.put({"what": "x"}, np.ones(3))
    (entry,) = c.entries()
    assert entry["parts"] == {"what": "x"} and entry["shape"] == [3]
    c.clear()
    assert c.entries() == []


def test_unwritable_cache_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    c = ArrayCache(blocker / "cache")
    with pytest.raises(WorkspaceError):
        c.put({"k": 1}, np.zeros(3))


def test_full_disk_is_a_clear_error_and_leaves_no_partial_entry(tmp_path, monkeypatch):
    c = ArrayCache(tmp_path)
    real_save = np.save

    def full(fh, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(WorkspaceError, match="disk is full"):
        c.put({"k": 1}, np.zeros(3))
    monkeypatch.setattr(np, "save", real_save)
    assert list(tmp_path.iterdir()) == []
    assert c.get({"k": 1}) is None


@pytest.mark.parametrize("failing_write", ["data", "metadata"])
def test_disk_full_at_the_low_level_keeps_earlier_entries_and_leaves_nothing(tmp_path, monkeypatch, failing_write):
    """ENOSPC from the OS (here at fsync, where a full disk often shows) on either file of an entry."""
    import errno
    import os

    c = ArrayCache(tmp_path, mmap=False)
    earlier = np.arange(100, dtype=np.float16)
    c.put({"k": "earlier"}, earlier)
    before = sorted(p.name for p in tmp_path.iterdir())
    fail_at = {"data": 1, "metadata": 2}[failing_write]
    calls = []
    real_fsync = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(WorkspaceError, match="disk is full") as info:
        c.put({"k": "new"}, np.ones(100))
    monkeypatch.undo()
    assert "Free some space" in info.value.fix and str(tmp_path) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial entry, no temporary file
    assert c.get({"k": "new"}) is None
    np.testing.assert_array_equal(c.get({"k": "earlier"}), earlier)
    np.testing.assert_array_equal(ArrayCache(tmp_path).get({"k": "earlier"}), earlier)


def test_only_old_orphans_are_removed_so_a_concurrent_writer_keeps_its_entry(tmp_path):
    # Another process has written its data file but not yet its metadata: a fresh orphan.
    # Making room must leave it alone; an orphan older than the grace period is a crash's leftover.
    c = ArrayCache(tmp_path, budget_bytes=10_000)
    c.put({"k": "a"}, np.zeros(100, np.uint8))
    fresh, old = tmp_path / "fresh.npy", tmp_path / "old.npy"
    np.save(fresh, np.ones(10))
    np.save(old, np.ones(10))
    past = time.time() - ORPHAN_GRACE_SECONDS - 60
    os.utime(old, (past, past))
    c.put({"k": "b"}, np.zeros(100, np.uint8))
    assert fresh.exists() and not old.exists()
    assert c.get({"k": "a"}) is not None and c.get({"k": "b"}) is not None


def test_put_returns_the_array_when_another_process_evicts_it_at_once(tmp_path, monkeypatch):
    c = ArrayCache(tmp_path)
    real_load = np.load

    def evicted_load(path, *a, **kw):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(np, "load", evicted_load)
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = c.put({"k": 1}, arr)
    monkeypatch.setattr(np, "load", real_load)
    np.testing.assert_array_equal(out, arr)
