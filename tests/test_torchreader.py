"""The torch-free reader of legacy PyTorch checkpoints: real file, crafted files, hostile files."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from tlcore.backbones._efficientnet_lite import efficientnet_lite0_checkpoint_path
from tlcore.backbones._torchreader import LEGACY_MAGIC_NUMBER, read_legacy_torch_file
from tlcore.errors import ConfigError

_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


# ------------------------------------------------ a tiny legacy-format writer
# Opcodes by hand: pickling real torch globals would need torch itself.
def _s(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _i(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)  # BININT
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _t(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL


def _tensor(key: str, numel: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...], storage: str = "FloatStorage") -> bytes:
    pid = _t(_s("storage"), _g("torch", storage), _s(key), _s("cpu"), _i(numel), b"N") + b"Q"  # BINPERSID
    hooks = _g("collections", "OrderedDict") + b")R"
    args = _t(pid, _i(offset), _t(*map(_i, size)), _t(*map(_i, stride)), b"\x89", hooks)
    return _g("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _state_pickle(entries: list[tuple[str, bytes]]) -> bytes:
    body = _g("collections", "OrderedDict") + b")R(" + b"".join(_s(n) + t for n, t in entries) + b"u"
    return b"\x80\x02" + body + b"."


def _header(magic: int = LEGACY_MAGIC_NUMBER) -> bytes:
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return pickle.dumps(magic, protocol=2) + pickle.dumps(1001, protocol=2) + pickle.dumps(sys_info, protocol=2)


def _storages(storages: dict[str, np.ndarray], counts: dict[str, int] | None = None) -> bytes:
    out = pickle.dumps(list(storages), protocol=2)
    for key, arr in storages.items():
        n = (counts or {}).get(key, arr.size)
        out += struct.pack("<q", n) + np.ascontiguousarray(arr).tobytes()
    return out


def _write(tmp_path: Path, data: bytes, name: str = "ckpt.pth") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- real file
def test_reads_the_bundled_efficientnet_lite0_checkpoint() -> None:
    sd = read_legacy_torch_file(efficientnet_lite0_checkpoint_path())
    assert len(sd) == 296
    trainable = sum(v.size for k, v in sd.items() if not k.endswith(_BN_STATS))
    assert trainable == 4_652_008  # conv/dense weights + fc bias + BN gamma/beta
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert "_blocks.0._expand_conv.weight" not in sd and "_blocks.1._expand_conv.weight" in sd
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.bias"].shape == (1000,)
    assert {v.dtype for v in sd.values()} == {np.dtype("float32"), np.dtype("int64")}
    assert all(v.flags.c_contiguous for v in sd.values())
    assert np.all(sd["_bn1.running_var"] > 0)
    assert list(sd)[0] == "_conv_stem.weight" and list(sd)[-1] == "_fc.bias"


# ------------------------------------------------------------- crafted files
def test_round_trips_offsets_strides_shared_storage_and_dtypes(tmp_path: Path) -> None:
    base = np.arange(24, dtype="<f4")
    longs = np.array([7, -3], dtype="<i8")
    entries = [
        ("plain", _tensor("s0", 24, 0, (2, 3, 4), (12, 4, 1))),
        ("transposed", _tensor("s0", 24, 0, (4, 6), (1, 4))),  # a non-contiguous view of the same storage
        ("sliced", _tensor("s0", 24, 5, (3,), (2,))),
        ("scalar", _tensor("s0", 24, 23, (), ())),
        ("counter", _tensor("s1", 2, 1, (1,), (1,), storage="LongStorage")),
        ("empty", _tensor("s0", 24, 0, (0, 5), (5, 1))),
    ]
    path = _write(tmp_path, _header() + _state_pickle(entries) + _storages({"s0": base, "s1": longs}))
    sd = read_legacy_torch_file(path)
    assert list(sd) == [name for name, _ in entries]
    np.testing.assert_array_equal(sd["plain"], base.reshape(2, 3, 4))
    np.testing.assert_array_equal(sd["transposed"], base.reshape(6, 4).T)
    np.testing.assert_array_equal(sd["sliced"], base[5:11:2])
    assert sd["scalar"].shape == () and sd["scalar"] == 23
    assert sd["counter"].dtype == np.int64 and sd["counter"].tolist() == [-3]
    assert sd["empty"].shape == (0, 5)
    assert all(v.flags.c_contiguous and v.flags.writeable for v in sd.values())


def test_refuses_a_forbidden_global_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = b"\x80\x02" + _g("os", "system") + _s(f"touch {marker}") + b"\x85R."  # os.system("touch ...")
    path = _write(tmp_path, _header() + hostile + _storages({}))
    with pytest.raises(ConfigError, match=r"os\.system") as info:
        read_legacy_torch_file(path)
    assert "nothing from it ran" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module,name",
    [("builtins", "eval"), ("subprocess", "Popen"), ("torch", "load"), ("numpy", "frombuffer"), ("collections", "deque")],
)
def test_refuses_globals_outside_the_allowlist(tmp_path: Path, module: str, name: str) -> None:
    payload = b"\x80\x02" + _g(module, name) + b")R."
    with pytest.raises(ConfigError, match=rf"{module}\.{name}"):
        read_legacy_torch_file(_write(tmp_path, _header() + payload + _storages({})))


def test_refuses_a_global_in_the_header(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile_magic = b"\x80\x02" + _g("os", "system") + _s(f"touch {marker}") + b"\x85R."
    with pytest.raises(ConfigError, match="outside a plain PyTorch state dict"):
        read_legacy_torch_file(_write(tmp_path, hostile_magic))
    assert not marker.exists()


def test_a_build_opcode_cannot_alter_a_checked_tensor(tmp_path: Path) -> None:
    # a valid tensor, then BUILD with the state {'size': (1000,)}
    tampered = _tensor("s0", 4, 0, (4,), (1,)) + b"}" + _s("size") + _t(_i(1000)) + b"sb"
    body = _g("collections", "OrderedDict") + b")R(" + _s("w") + tampered + b"u"
    path = _write(tmp_path, _header() + b"\x80\x02" + body + b"." + _storages({"s0": np.zeros(4, "<f4")}))
    with pytest.raises(ConfigError, match="tries to modify a TensorRef"):
        read_legacy_torch_file(path)


def test_refuses_zip_format(tmp_path: Path) -> None:
    path = _write(tmp_path, b"PK\x03\x04" + b"\x00" * 100, "new.pt")
    with pytest.raises(ConfigError, match="zip-format.*only the legacy"):
        read_legacy_torch_file(path)


def test_refuses_a_wrong_magic_number(tmp_path: Path) -> None:
    data = pickle.dumps(12345, protocol=2) + _header()[len(pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2)) :]
    with pytest.raises(ConfigError, match="wrong magic number"):
        read_legacy_torch_file(_write(tmp_path, data))


def test_refuses_a_non_pickle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not start with a pickle"):
        read_legacy_torch_file(_write(tmp_path, b"GIF89a not a checkpoint"))


@pytest.mark.parametrize("keep", [0.001, 0.5, 0.9999])
def test_refuses_a_truncated_checkpoint(tmp_path: Path, keep: float) -> None:
    data = efficientnet_lite0_checkpoint_path().read_bytes()
    path = _write(tmp_path, data[: max(1, int(len(data) * keep))])
    with pytest.raises(ConfigError, match="truncated"):
        read_legacy_torch_file(path)


def test_refuses_a_tensor_larger_than_its_storage(tmp_path: Path) -> None:
    entries = [("w", _tensor("s0", 5, 0, (10,), (1,)))]
    path = _write(tmp_path, _header() + _state_pickle(entries) + _storages({"s0": np.zeros(5, "<f4")}))
    with pytest.raises(ConfigError, match="does not fit in its storage"):
        read_legacy_torch_file(path)


def test_refuses_a_storage_whose_size_disagrees(tmp_path: Path) -> None:
    entries = [("w", _tensor("s0", 6, 0, (5,), (1,)))]
    path = _write(tmp_path, _header() + _state_pickle(entries) + _storages({"s0": np.zeros(5, "<f4")}))
    with pytest.raises(ConfigError, match="holds 5 elements but the state dict says 6"):
        read_legacy_torch_file(path)


def test_a_forged_huge_storage_fails_before_allocating(tmp_path: Path) -> None:
    n = 2**40
    entries = [("w", _tensor("s0", n, 0, (4,), (1,)))]
    data = _header() + _state_pickle(entries) + pickle.dumps(["s0"], protocol=2) + struct.pack("<q", n) + b"\0" * 16
    with pytest.raises(ConfigError, match="truncated"):
        read_legacy_torch_file(_write(tmp_path, data))


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_legacy_torch_file(tmp_path / "nope.pth")
