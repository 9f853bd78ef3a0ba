"""IDX files (the MNIST / Fashion-MNIST format) for the dataset import tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

__all__ = ["write_idx"]

_TYPE_CODES = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    """Write ``arr`` (uint8, int32 or float32) as an IDX file, gzip-compressed when ``gz``; returns ``path``."""
    header = bytes([0, 0, _TYPE_CODES[arr.dtype.type], arr.ndim]) + b"".join(struct.pack(">i", d) for d in arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path
