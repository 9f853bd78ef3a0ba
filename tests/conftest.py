"""Shared fixtures: a throw-away workspace and tiny generated image datasets.

- ``workspace``: a fresh ``Workspace`` in a temporary folder, with ``TLCORE_HOME``
  pointing at it (so pages and the CLI open the same one) and no extra data roots.
- ``make_image_tree``: a factory that writes a folder-per-class tree of small
  images with Pillow, each image different (no accidental duplicates).
- ``tiny_dataset``: three classes of small PNGs under the workspace (so within
  its data roots): ``<workspace>/photos/{bird,cat,dog}/*.png``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# albumentations checks PyPI for updates at import time; never in tests.
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `pytest` (not only `python -m pytest`) finds tlcore and tlui
    sys.path.insert(0, str(REPO_ROOT))

from tlcore import runtime  # noqa: E402
from tlcore.workspace import Workspace  # noqa: E402

# TensorFlow's threads per op ($TLCORE_CPU_THREADS: scripts/test.sh shares the cores between its
# pytest-xdist processes) can only be set before TensorFlow starts, so before any test runs.
runtime.configure()

TINY_CLASSES: dict[str, int] = {"bird": 4, "cat": 6, "dog": 5}


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    """Put ``sys.modules["__main__"]`` back after each test.

    Streamlit's ``AppTest`` leaves it set to the script it ran (a temporary file for
    ``AppTest.from_function``), and a later test's ``multiprocessing`` "spawn" child then
    re-runs that script as its main module and dies before doing its work.
    """
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


def write_image_tree(
    root: str | os.PathLike[str],
    classes: Mapping[str, int] = TINY_CLASSES,
    *,
    size: tuple[int, int] = (32, 24),
    mode: str = "RGB",
    fmt: str = "PNG",
    seed: int = 0,
) -> Path:
    """Write ``root/<class>/<class>_<i>.<ext>`` images: ``classes`` maps class → count.

    Each image is seeded noise plus a class tint, so every file is distinct and
    classes differ. ``size`` is (width, height); ``mode`` a Pillow mode ("RGB", "L",
    "RGBA"); ``fmt`` a Pillow format ("PNG", "JPEG", ...).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ext = {"JPEG": "jpg"}.get(fmt.upper(), fmt.lower())
    w, h = size
    for k, (cls, count) in enumerate(sorted(classes.items())):
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            arr[..., k % 3] = np.clip(arr[..., k % 3].astype(int) + 80, 0, 255).astype(np.uint8)
            img = Image.fromarray(arr, "RGB")
            if mode != "RGB":
                img = img.convert(mode)
            img.save(folder / f"{cls}_{i:03d}.{ext}", format=fmt)
    return root


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Workspace:
    """A fresh workspace in ``tmp_path/workspace``; ``TLCORE_HOME`` points at it."""
    root = tmp_path / "workspace"
    root.mkdir()
    monkeypatch.setenv("TLCORE_HOME", str(root))
    monkeypatch.delenv("TLCORE_DATA_ROOTS", raising=False)
    return Workspace(root)


@pytest.fixture
def make_image_tree() -> Callable[..., Path]:
    """The ``write_image_tree`` factory: ``make_image_tree(root, {"a": 3, "b": 3}, size=(40, 30))``."""
    return write_image_tree


@pytest.fixture
def tiny_dataset(workspace) -> Path:
    """``<workspace>/photos`` with classes bird (4), cat (6), dog (5) of 32×24 RGB PNGs."""
    return write_image_tree(workspace.root / "photos", TINY_CLASSES)


# --- PostgreSQL (Optuna RDBStorage with a postgresql URL) ---------------------------
# ``postgres_url``: one server for the session (``TLCORE_TEST_POSTGRES_URL``, else a
# private throw-away cluster; see tests/helpers/pgserver.py). Skips when there is none, fails
# instead when ``TLCORE_REQUIRE_POSTGRES=1`` (CI). ``fresh_postgres_url``: a new empty
# database per test, dropped afterwards, so studies never leak between tests.

from tests.helpers import pgserver  # noqa: E402


def _no_postgres(reason: str) -> None:
    if pgserver.require_postgres():
        pytest.fail(f"PostgreSQL required ({pgserver.REQUIRE_ENV}=1) but not available: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of the session's PostgreSQL test database (``.../tlcore_test``)."""
    try:
        import psycopg  # noqa: F401  (SQLAlchemy's default driver for postgresql:// URLs)
    except ImportError:
        _no_postgres("the psycopg driver is not installed (pip install 'psycopg[binary]')")
    url = pgserver.postgres_url()
    if url is None:
        _no_postgres(pgserver.unavailable_reason() or "no server")
    yield url
    pgserver.stop_private_cluster()  # no-op for a server from TLCORE_TEST_POSTGRES_URL


@pytest.fixture
def fresh_postgres_url(postgres_url) -> Iterator[str]:
    """URL of a new empty database ``tlcore_t_<random>`` on the session's server, dropped after the test."""
    import uuid

    name = f"tlcore_t_{uuid.uuid4().hex[:12]}"
    try:
        url = pgserver.create_database(postgres_url, name)
    except Exception as exc:  # server down, no CREATEDB right, ...
        _no_postgres(f"could not create database {name}: {exc}")
    yield url
    pgserver.drop_database(postgres_url, name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the longest tests first: the browser tests, then the multi-process ones marked ``slow``.

    With pytest-xdist (scripts/test.sh) they then overlap with the many short tests instead of
    running last and alone. The sort is stable, so each group keeps its file order.
    """
    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("e2e"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)


@pytest.fixture
def stand_in_spawn(monkeypatch, request):
    """``background.spawn`` replaced by a stand-in for a background scout process: a sleeping Python
    whose command line names tlcore, as a real scout's does (no TensorFlow). Returns the processes
    started; they are killed after the test."""
    import subprocess

    from tlcore import background

    started: list[subprocess.Popen] = []

    def spawn(cmd, log_path, *, cwd, env):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "tlcore-scout-stand-in"])
        background.track_child(proc)
        started.append(proc)
        return proc

    monkeypatch.setattr(background, "spawn", spawn)

    def stop_all():
        for proc in started:
            proc.kill()
            proc.wait()

    request.addfinalizer(stop_all)
    return started
