"""The package: pyproject.toml builds a wheel that installs and runs away from the checkout.

The wheel is built offline (``pip wheel --no-build-isolation``, with the setuptools that
requirements-dev.txt pins) from a copy of the repository, so that setuptools' ``build/`` and
``*.egg-info`` never land in the checkout. It must hold the ``tlcore`` and ``tlui`` packages
(every module), the dashboard's files under ``share/tlcore-workbench/app/`` (where ``tlcore app``
looks for them), the ``tlcore`` console script and requirements.txt's pins. Installed with
``--no-deps`` into a fresh virtual environment that sees this one's packages, ``tlcore app``
must find its files under the environment's prefix and the installed Home page must run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tlcore import __version__
from tlcore.cli import _app

REPO = Path(__file__).resolve().parent.parent
DIST = "tlcore_workbench"
SHARE = _app.APP_SHARE_DIR.as_posix()  # share/tlcore-workbench/app
DATA = f"{DIST}-{__version__}.data/data/{SHARE}"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]

# Not copied into the build folder: they are not part of the package and some are big.
_IGNORE = shutil.ignore_patterns(".git", ".venv", "workspace", "__pycache__", "*.pyc", ".pytest_cache",
                                 ".ruff_cache", "build", "dist", "*.egg-info", "test-artifacts", ".whl", ".gl")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "TLCORE_HOME"}}
    return {**env, "NO_ALBUMENTATIONS_UPDATE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _files(folder: Path, pattern: str) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.glob(pattern) if p.is_file()
            and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.fail(f"pyproject.toml needs setuptools>=77 to build; this environment has {setuptools.__version__}. "
                    "Run scripts/setup.sh dev (requirements-dev.txt pins it).")
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=_IGNORE, symlinks=True)
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index",
          "--quiet", "--wheel-dir", str(tmp / "dist")], cwd=tmp)
    wheels = list((tmp / "dist").glob("*.whl"))
    assert [w.name for w in wheels] == [f"{DIST}-{__version__}-py3-none-any.whl"]
    return wheels[0]


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def _dist_info(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        return z.read(f"{DIST}-{__version__}.dist-info/{name}").decode()


def test_the_wheel_holds_every_module_of_tlcore_and_tlui_and_nothing_else(names):
    for package in ("tlcore", "tlui"):
        modules = _files(REPO, f"{package}/**/*.py")
        assert modules and modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    assert "tlcore/cli/_app.py" in names
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"tlcore", "tlui", f"{DIST}-{__version__}.dist-info", f"{DIST}-{__version__}.data"}


def test_the_wheel_installs_the_dashboard_files_where_tlcore_app_looks(names):
    app = {n[len(DATA) + 1:] for n in names if n.startswith(DATA + "/")}
    expected = ({"streamlit_app.py", ".streamlit/config.toml"} | _files(REPO, "pages/*.py")
                | _files(REPO, "demo_data/**/*"))
    assert expected <= app, f"missing from the wheel: {sorted(expected - app)}"
    assert len(_files(REPO, "demo_data/fashion-mnist-demo/**/*.png")) == 500


def test_the_wheel_declares_the_console_script_the_pins_and_the_licence(wheel):
    entry_points = _dist_info(wheel, "entry_points.txt")
    assert "[console_scripts]\ntlcore = tlcore.cli:console_main" in entry_points
    meta = Parser().parsestr(_dist_info(wheel, "METADATA"))
    assert meta["Name"] == "tlcore-workbench" and meta["Version"] == __version__
    assert meta["License-Expression"] == "Apache-2.0"
    pins = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    requires = meta.get_all("Requires-Dist")
    assert [r for r in requires if "extra ==" not in r] == pins
    assert "dev" in meta.get_all("Provides-Extra")
    assert any(r.startswith("pytest==") and 'extra == "dev"' in r for r in requires)
    assert f"{DIST}-{__version__}.dist-info/licenses/LICENSE" in zipfile.ZipFile(wheel).namelist()
    assert meta["Requires-Python"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "requires-python"]


def test_tlcore_app_from_the_checkout_uses_the_projects_streamlit_settings(tmp_path):
    help_text = _run([sys.executable, "-m", "tlcore", "app", "--help"], cwd=REPO)
    assert "--server.port" in help_text and "--app-dir" in help_text
    ws = tmp_path.resolve() / "ws"
    out = _run([sys.executable, "-m", "tlcore", "--workspace", str(ws), "app", "--dry-run",
                "--server.port", "8600", "--server.headless=false"], cwd=REPO)
    assert f"App:       {REPO}" in out
    assert f"Workspace: {ws}" in out
    assert not ws.exists()  # a dry run creates nothing
    cmd = out.splitlines()[-1]
    assert cmd.startswith(f"{sys.executable} -m streamlit run ")
    for flag in ("--server.maxUploadSize=500", "--server.enableXsrfProtection=true",
                 "--browser.gatherUsageStats=false", "--client.showSidebarNavigation=false"):
        assert flag in cmd
    assert "--server.headless=true" not in cmd  # the user's own value wins
    assert cmd.endswith(f"{REPO / 'streamlit_app.py'} --server.port 8600 --server.headless=false")


def test_config_flags_cover_every_option_of_the_projects_config():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    flags = _app.config_flags(REPO / ".streamlit" / "config.toml")
    assert len(flags) == sum(len(options) for options in config.values())
    assert "--server.enableXsrfProtection=true" in flags
    assert "--server.maxUploadSize=500" not in _app.config_flags(REPO / ".streamlit" / "config.toml",
                                                                 skip={"server.maxUploadSize"})


def test_a_missing_app_folder_is_a_one_line_error_with_a_fix(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tlcore", "app", "--app-dir", str(tmp_path)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: The folder given with --app-dir is not the workbench's app folder.")
    assert "streamlit_app.py" in proc.stderr and "Traceback" not in proc.stderr


def test_the_installed_package_runs_away_from_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--quiet",
          str(wheel)], cwd=tmp_path)
    # The dependencies are this environment's: a .pth file adds its site-packages after the new one's.
    venv_site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp_path)
    (Path(venv_site.strip()) / "_tlcore_test_base.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    tlcore = venv / "bin" / "tlcore"
    away = tmp_path.resolve() / "elsewhere"
    away.mkdir()

    assert "usage: tlcore" in _run([str(tlcore), "--help"], cwd=away)
    assert "usage: tlcore app" in _run([str(tlcore), "app", "--help"], cwd=away)
    where = _run([str(python), "-c", "import tlcore; print(tlcore.__file__)"], cwd=away)
    assert Path(where.strip()).resolve().is_relative_to(venv.resolve())  # the installed copy, not the checkout
    out = _run([str(tlcore), "app", "--dry-run"], cwd=away)
    app = (venv / _app.APP_SHARE_DIR).resolve()
    assert f"App:       {app}" in out
    assert f"Workspace: {away / 'workspace'}" in out
    assert f"{app / 'streamlit_app.py'}" in out.splitlines()[-1]

    # The installed Home page runs (imports tlui and tlcore from the wheel, links its pages).
    script = textwrap.dedent(f"""
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(app / 'streamlit_app.py')!r}, default_timeout=120).run()
        assert not at.exception, at.exception
        assert not at.error, at.error
        print("metrics:", ", ".join(m.label for m in at.metric))
    """)
    out = _run([str(python), "-c", script], cwd=away, env=_env(TLCORE_HOME=str(tmp_path / "ws")))
    assert "Datasets registered" in out
