from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.idx import write_idx
from tlcore.datasets import FASHION_MNIST_CLASSES, find_fashion_mnist, import_idx, read_idx
from tlcore.errors import ConfigError, DatasetError


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert (read_idx(write_idx(tmp_path / "x.idx", arr, gz)) == arr).all()
    f = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    assert np.allclose(read_idx(write_idx(tmp_path / "f.idx", f, gz)), f)


def test_read_idx_refuses_bad_files(tmp_path):
    (tmp_path / "text").write_text("hello world")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(tmp_path / "text")
    arr = np.zeros((10, 4, 4), np.uint8)
    p = write_idx(tmp_path / "t.idx", arr)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(p)
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(DatasetError, match="corrupt"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(DatasetError, match="Cannot read"):
        read_idx(tmp_path / "missing")


def test_import_idx_writes_class_folders(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (12, 8, 8), dtype=np.uint8)
    labels = np.array([0, 1, 2] * 4, dtype=np.uint8)
    ip = write_idx(tmp_path / "img.gz", images, gz=True)
    lp = write_idx(tmp_path / "lab", labels)
    out = import_idx({"all": (ip, lp)}, tmp_path / "out", class_names=["zero", "one", "two words"], per_class=3)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(files) == 9 and {f.split("/")[0] for f in files} == {"zero", "one", "two words"}
    first = np.asarray(Image.open(out / "zero" / "00000.png"))
    assert (first == images[0]).all()


def test_import_idx_refuses_mismatch_and_leaves_nothing(tmp_path):
    images = np.zeros((5, 4, 4), np.uint8)
    labels = np.zeros(4, np.uint8)
    ip, lp = write_idx(tmp_path / "i", images), write_idx(tmp_path / "l", labels)
    with pytest.raises(DatasetError, match="one label per image"):
        import_idx({"all": (ip, lp)}, tmp_path / "out")
    labels = np.array([0, 1, 2, 3, 3], np.uint8)
    lp = write_idx(tmp_path / "l", labels)
    with pytest.raises(DatasetError, match="class names"):
        import_idx({"all": (ip, lp)}, tmp_path / "out", class_names=["a", "b"])
    with pytest.raises(DatasetError, match="folder names"):
        import_idx({"all": (ip, lp)}, tmp_path / "out", class_names=["a", "b", "../c", "d"])
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("per_class, words", [(-1, "0 or more"), ("3", "0 or more"), (True, "0 or more"),
                                               ({"train": -2}, "0 or more"), (0, "Nothing would be imported"),
                                               ({"train": 0}, "Nothing would be imported"),
                                               ({"train": 0, "test": 2}, "without training images")])
def test_import_idx_refuses_a_bad_per_class_limit_and_writes_nothing(tmp_path, per_class, words):
    """Among them 0 training images with test images kept (--train-per-class 0): the import used to
    succeed with empty train/ class folders, and only training said the dataset was unusable."""
    images = np.zeros((6, 4, 4), np.uint8)
    ip, lp = write_idx(tmp_path / "i", images), write_idx(tmp_path / "l", np.array([0, 1] * 3, np.uint8))
    splits = ({s: (ip, lp) for s in per_class} if isinstance(per_class, dict) else {"all": (ip, lp)})
    with pytest.raises(ConfigError, match=words) as info:
        import_idx(splits, tmp_path / "out", per_class=per_class)
    assert "Leave it out to keep every" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_limit_of_zero_leaves_that_splits_class_folders_empty(tmp_path):
    """The benchmarks' training subsets: a pre-split tree whose test part holds no image."""
    images = np.zeros((6, 4, 4), np.uint8)
    ip, lp = write_idx(tmp_path / "i", images), write_idx(tmp_path / "l", np.array([0, 1] * 3, np.uint8))
    out = import_idx({"train": (ip, lp), "test": (ip, lp)}, tmp_path / "out", per_class={"train": 2, "test": 0})
    assert len(list((out / "train").rglob("*.png"))) == 4
    assert sorted(p.name for p in (out / "test").iterdir()) == ["0", "1"]
    assert not list((out / "test").rglob("*.png"))


def test_fashion_mnist_found_through_env(tmp_path, monkeypatch):
    for stem, arr in [
        ("train-images-idx3-ubyte", np.zeros((20, 28, 28), np.uint8)),
        ("train-labels-idx1-ubyte", np.arange(20, dtype=np.uint8) % 10),
        ("t10k-images-idx3-ubyte", np.zeros((10, 28, 28), np.uint8)),
        ("t10k-labels-idx1-ubyte", np.arange(10, dtype=np.uint8)),
    ]:
        write_idx(tmp_path / f"{stem}.gz", arr, gz=True)
    monkeypatch.setenv("TLCORE_FASHION_MNIST", str(tmp_path))
    found = find_fashion_mnist()
    assert found is not None and set(found) == {"train", "test"}
    from tlcore.datasets import import_fashion_mnist

    out = import_fashion_mnist(tmp_path / "fm", per_class={"train": 1, "test": 1})
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(FASHION_MNIST_CLASSES)
    assert len(list((out / "test").rglob("*.png"))) == 10


def test_debian_fashion_mnist_package_is_found_when_installed():
    found = find_fashion_mnist()
    if found is None:
        pytest.skip("dataset-fashion-mnist is not installed here (CI installs it)")
    imgs = read_idx(found["test"][0])
    labels = read_idx(found["test"][1])
    assert imgs.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10


def test_the_benchmarks_training_subset_registers(tmp_path, monkeypatch):
    """bench/_fmnist.add_train_subset, the data step of the calibration, audit, scout and search
    benchmarks, on small IDX files: train images only, the test part empty, the layout pre-split."""
    import importlib.util

    from tlcore.workspace import Workspace

    fm = tmp_path / "fm"
    fm.mkdir()
    for stem, n in (("train-images-idx3-ubyte", 60), ("t10k-images-idx3-ubyte", 20)):
        write_idx(fm / stem, (np.arange(n * 28 * 28) % 251).astype(np.uint8).reshape(n, 28, 28))
        write_idx(fm / stem.replace("images-idx3", "labels-idx1"), np.arange(n, dtype=np.uint8) % 10)
    monkeypatch.setenv("TLCORE_FASHION_MNIST", str(fm))
    bench = Path(__file__).resolve().parent.parent / "bench"
    monkeypatch.syspath_prepend(str(bench))
    spec = importlib.util.spec_from_file_location("_fmnist", bench / "_fmnist.py")
    fmnist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fmnist)
    ws = Workspace(tmp_path / "ws")
    fmnist.add_train_subset(ws, "subset", 40)
    record = ws.get_dataset("subset")
    assert record.num_images == 40 and record.layout == "presplit"
