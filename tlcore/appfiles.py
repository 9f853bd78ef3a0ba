"""Where the workbench's own files are: the dashboard's files and the demo dataset.

The dashboard runs as files, not as an importable module: ``streamlit run
streamlit_app.py`` with ``pages/`` beside it and the Streamlit settings in
``.streamlit/config.toml`` (the pages import ``tlui`` and ``tlcore`` as packages).
The demo dataset is a folder of PNGs, ``demo_data/fashion-mnist-demo/``. None of
them lies inside a Python package, so they are found in one of two layouts:

- a source checkout: at the repository root, the folder that holds the ``tlcore``
  package (``PACKAGE_ROOT``);
- an installed package: ``pip install .`` copies them to
  ``<prefix>/share/tlcore-workbench/app/`` (``APP_SHARE_DIR``, written by
  pyproject.toml's ``[tool.setuptools.data-files]``), where ``<prefix>`` is the
  environment the package went into.

This module is the one place that knows both. ``search_dirs()`` lists the folders
to look in, in order: ``PACKAGE_ROOT``, then ``<prefix>/share/tlcore-workbench/app``
for the prefix ``tlcore`` was imported from (``<prefix>/lib/pythonX.Y/site-packages``),
``sys.prefix``, the install scheme's data folder and the user base (``pip install
--user``). From that list:

- ``find_app_dir()``: the first folder with ``streamlit_app.py``, ``pages/`` and
  ``.streamlit/config.toml`` (``tlcore app`` runs it: ``tlcore.cli._app``);
- ``demo_data_dir()``: the first folder's ``demo_data/`` that exists; it is
  ``tlcore.workspace.DEMO_DATA_DIR`` (a data root of every workspace) and holds
  ``tlcore.datasets.DEMO_PATH`` (what ``ensure_demo`` registers).

A checkout wins over an installed copy, so ``python -m tlcore`` run from a checkout
uses the checkout's files even where the package is installed too.

Example:

>>> find_app_dir()  # in a checkout
PosixPath('/home/me/tlcore-workbench')
>>> demo_data_dir()  # after pip install . into /home/me/venv
PosixPath('/home/me/venv/share/tlcore-workbench/app/demo_data')
"""

from __future__ import annotations

import site
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from tlcore.errors import NotFoundError

__all__ = [
    "APP_SHARE_DIR",
    "CONFIG_FILE",
    "DEMO_DATA",
    "MAIN_SCRIPT",
    "PACKAGE_ROOT",
    "PAGES_DIR",
    "demo_data_dir",
    "find_app_dir",
    "install_prefixes",
    "is_app_dir",
    "search_dirs",
]

# The folder that holds the tlcore package: a checkout's root, or site-packages when installed.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# Where the wheel installs the app files, relative to the installation prefix.
APP_SHARE_DIR = Path("share", "tlcore-workbench", "app")
MAIN_SCRIPT = "streamlit_app.py"
PAGES_DIR = "pages"
CONFIG_FILE = Path(".streamlit", "config.toml")
DEMO_DATA = "demo_data"


def install_prefixes(package_root: Path = PACKAGE_ROOT) -> list[Path]:
    """The prefixes an installed copy's data files may be under, most likely first.

    The prefix ``package_root`` was installed under (``<prefix>/lib/pythonX.Y/site-packages``
    gives ``<prefix>``; none for a checkout), ``sys.prefix``, the install scheme's data
    folder and, where user site-packages are enabled, the user base.
    """
    found: list[Path] = []
    lib = package_root.parent  # pythonX.Y
    if lib.name.startswith("python") and lib.parent.name in {"lib", "lib64"}:
        found.append(lib.parent.parent)
    found += [Path(sys.prefix), Path(sysconfig.get_path("data"))]
    if site.ENABLE_USER_SITE and site.USER_BASE:
        found.append(Path(site.USER_BASE))
    return list(dict.fromkeys(found))


def search_dirs(package_root: Path = PACKAGE_ROOT, prefixes: Iterable[Path] | None = None) -> list[Path]:
    """Where the app files and the demo data may be, in order, without repeats.

    ``package_root`` (a checkout's root), then ``<prefix>/share/tlcore-workbench/app``
    for each of ``prefixes`` (default: ``install_prefixes(package_root)``).
    """
    if prefixes is None:
        prefixes = install_prefixes(package_root)
    return list(dict.fromkeys([Path(package_root), *(Path(p) / APP_SHARE_DIR for p in prefixes)]))


def is_app_dir(folder: Path) -> bool:
    """Whether ``folder`` holds the dashboard: ``streamlit_app.py``, ``pages/`` and ``.streamlit/config.toml``."""
    return (folder / MAIN_SCRIPT).is_file() and (folder / PAGES_DIR).is_dir() and (folder / CONFIG_FILE).is_file()


def find_app_dir(dirs: Iterable[Path] | None = None) -> Path:
    """The first of ``dirs`` (default: ``search_dirs()``) that holds the dashboard, resolved.

    Raises:
        NotFoundError: none does; the message lists where it looked.
    """
    looked = list(search_dirs() if dirs is None else dirs)
    for folder in looked:
        if is_app_dir(folder):
            return folder.resolve()
    raise NotFoundError(
        f"The dashboard's files ({MAIN_SCRIPT}, {PAGES_DIR}/, {CONFIG_FILE}) were not found.",
        received="looked in " + ", ".join(str(d) for d in looked),
        fix="Install the package from a checkout with 'pip install .' (it copies them under "
        f"<prefix>/{APP_SHARE_DIR.as_posix()}), or run 'python -m tlcore app' from the repository root, "
        "or pass --app-dir /path/to/the/repository.",
    )


def demo_data_dir(dirs: Iterable[Path] | None = None) -> Path:
    """The ``demo_data/`` folder of the first of ``dirs`` (default: ``search_dirs()``) that has one, resolved.

    When none has one (an install without the demo), the first folder's ``demo_data``,
    which does not exist: ``ensure_demo`` then registers nothing.
    """
    looked = list(search_dirs() if dirs is None else dirs)
    for folder in looked:
        if (folder / DEMO_DATA).is_dir():
            return (folder / DEMO_DATA).resolve()
    return looked[0] / DEMO_DATA if looked else PACKAGE_ROOT / DEMO_DATA
