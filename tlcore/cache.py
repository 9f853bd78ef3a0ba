"""A content-addressed, size-bounded disk cache of numpy arrays.

Both caches of the input pipeline use it: decoded-and-resized images (uint8) and
the frozen backbone prefix's output (float16). An entry is keyed by a dict of
everything that determines its content (dataset fingerprint, backbone, weights,
image size, depth, augmentation, copy); its key is the hash of that dict.

Each entry is ``<key>.npy`` plus ``<key>.json`` (shape, dtype, CRC-32 and the key
dict). Both are written atomically, the metadata last, so a crash leaves either
no entry or a complete one. On read the shape, dtype and checksum are checked: a
corrupt or partial entry is deleted and reported as a miss, never trusted.
Reading an entry touches it; when the cache grows past its budget, the least
recently used entries are evicted.

``tlcore.pipeline.load_image_array`` fills ``<workspace>/cache/images`` and
``tlcore.trainer.train`` fills ``<workspace>/cache/features``; the trainer gives
each a 20 GiB budget (``budget_bytes=None`` means no limit). Deleting the cache
folder only costs recomputation.

Example:

>>> cache = ArrayCache("/tmp/cache", budget_bytes=2**30)
>>> arr = cache.get_or_create({"what": "squares", "n": 4}, lambda: np.arange(4) ** 2)
>>> cache.stats.misses, cache.get({"what": "squares", "n": 4}).tolist()
(1, [0, 1, 4, 9])
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tlcore._fsutil import atomic_open, atomic_write_json
from tlcore.errors import WorkspaceError

__all__ = ["ArrayCache", "CacheStats", "cache_key"]

_CRC_CHUNK = 1 << 24


def cache_key(parts: dict[str, Any]) -> str:
    """A stable hex key for a dict of JSON-serialisable values."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _crc(arr: np.ndarray) -> int:
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    crc = 0
    for start in range(0, flat.size, _CRC_CHUNK):
        crc = zlib.crc32(flat[start : start + _CRC_CHUNK], crc)
    return crc


# A data file without metadata younger than this may be a concurrent writer's entry in progress.
ORPHAN_GRACE_SECONDS = 600.0


@dataclasses.dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    rebuilt_corrupt: int = 0
    evicted: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class ArrayCache:
    """Arrays on disk under ``root``, at most ``budget_bytes`` in total.

    Args:
        root: the cache folder (created on first write).
        budget_bytes: evict least-recently-used entries above this. Defaults to
            None (no limit).
        mmap: return read-only memory-mapped arrays instead of loading them.
            Defaults to True.
    """

    def __init__(self, root: str | os.PathLike[str], *, budget_bytes: int | None = None, mmap: bool = True):
        self.root = Path(root)
        self.budget_bytes = budget_bytes
        self.mmap = mmap
        self.stats = CacheStats()

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npy", self.root / f"{key}.json"

    def _drop(self, key: str) -> None:
        for p in self._paths(key):
            try:
                p.unlink()
            except OSError:  # already gone, or the folder itself is unusable (reported by put)
                pass

    def get(self, parts: dict[str, Any]) -> np.ndarray | None:
        """The cached array for ``parts``, or None (a miss, or a corrupt entry removed)."""
        key = cache_key(parts)
        data_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            arr = np.load(data_path, mmap_mode="r" if self.mmap else None, allow_pickle=False)
            ok = (
                list(arr.shape) == meta["shape"]
                and str(arr.dtype) == meta["dtype"]
                and _crc(arr) == meta["crc32"]
            )
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            ok = False
        if not ok:
            self._drop(key)
            self.stats.rebuilt_corrupt += 1
            self.stats.misses += 1
            return None
        now = time.time()
        try:
            os.utime(meta_path, (now, now))
        except OSError:
            pass
        self.stats.hits += 1
        return arr

    def put(self, parts: dict[str, Any], arr: np.ndarray) -> np.ndarray:
        """Store ``arr`` under ``parts`` atomically; returns the stored (mapped) array."""
        key = cache_key(parts)
        data_path, meta_path = self._paths(key)
        arr = np.ascontiguousarray(arr)
        if self.budget_bytes is not None and arr.nbytes > self.budget_bytes:
            return arr  # larger than the whole budget: use it without caching
        self._make_room(arr.nbytes)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(
                f"Cannot create the cache folder: {exc.strerror}.",
                received=str(self.root),
                fix="Make it writable, free disk space, or point TLCORE_HOME at another workspace.",
            ) from exc
        with atomic_open(data_path, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        try:
            atomic_write_json(
                meta_path,
                {"shape": list(arr.shape), "dtype": str(arr.dtype), "crc32": _crc(arr), "parts": parts,
                 "bytes": int(arr.nbytes), "created": time.time()},
            )
        except BaseException:
            with contextlib.suppress(OSError):  # no metadata, no entry: do not leave the data behind
                data_path.unlink()
            raise
        if self.mmap:
            try:
                return np.load(data_path, mmap_mode="r", allow_pickle=False)
            except OSError:  # evicted by another process in the meantime: the array in memory is as good
                pass
        return arr

    def get_or_create(self, parts: dict[str, Any], create: Callable[[], np.ndarray], *,
                      exclusive: bool = False) -> np.ndarray:
        """The cached array, or ``create()`` stored and returned.

        With ``exclusive``, processes that ask for the same missing entry at once create
        it once: the first holds the entry's lock (``lock``) while it creates, the others
        wait for it and then read its entry.
        """
        arr = self.get(parts)
        if arr is not None:
            return arr
        if not exclusive:
            return self.put(parts, create())
        with self.lock(parts):
            arr = self.get(parts)  # another process may have made it while this one waited
            if arr is not None:
                self.stats.misses -= 1  # the first look counted the miss already
                return arr
            return self.put(parts, create())

    def drop(self, parts: dict[str, Any]) -> None:
        """Remove the entry for ``parts`` if there is one (a reader that has it mapped keeps its copy)."""
        self._drop(cache_key(parts))

    def contains(self, parts: dict[str, Any]) -> bool:
        """Whether an entry for ``parts`` exists (not checked, not counted, not touched)."""
        return self._paths(cache_key(parts))[1].is_file()

    @contextlib.contextmanager
    def lock(self, parts: dict[str, Any]):
        """An exclusive lock on the entry ``parts`` across processes (``flock`` on ``<key>.lock``).

        The kernel releases it when its holder dies, even by ``kill -9``; since entries
        are written atomically, the next holder finds either nothing or a whole entry.
        """
        import fcntl

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / f"{cache_key(parts)}.lock", "a+b")
        except OSError as exc:
            raise WorkspaceError(f"Cannot create a lock in the cache folder: {exc.strerror}.",
                                 received=str(self.root),
                                 fix="Make it writable, or point TLCORE_HOME at another workspace.") from exc
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def entries(self) -> list[dict[str, Any]]:
        """Metadata of every entry, most recently used first."""
        out = []
        if not self.root.is_dir():
            return out
        for meta_path in self.root.glob("*.json"):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                meta["key"] = meta_path.stem
                meta["last_used"] = meta_path.stat().st_mtime
                out.append(meta)
            except (OSError, ValueError):
                continue
        return sorted(out, key=lambda m: m["last_used"], reverse=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*.npy")) if self.root.is_dir() else 0

    def _make_room(self, incoming: int) -> None:
        if self.budget_bytes is None or not self.root.is_dir():
            return
        entries = self.entries()
        total = sum(int(e.get("bytes", 0)) for e in entries)
        # Orphaned data files (no metadata) are leftovers of a crash: remove them. A fresh one may be
        # another process's entry between its data and its metadata write, so only old ones go.
        known = {e["key"] for e in entries}
        stale_before = time.time() - ORPHAN_GRACE_SECONDS
        for p in self.root.glob("*.npy"):
            if p.stem not in known:
                with contextlib.suppress(OSError):
                    if p.stat().st_mtime < stale_before:
                        p.unlink()
        while entries and total + incoming > self.budget_bytes:
            victim = entries.pop()  # least recently used
            self._drop(victim["key"])
            total -= int(victim.get("bytes", 0))
            self.stats.evicted += 1

    def clear(self) -> None:
        for e in self.entries():
            self._drop(e["key"])
