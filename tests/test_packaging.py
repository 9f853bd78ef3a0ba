"""The package: pyproject.toml builds a wheel that installs and runs away from the checkout.

``tlcore.appfiles`` finds the dashboard's files and the demo dataset in a checkout or under an
installed copy's ``<prefix>/share/tlcore-workbench/app/``; the fast tests here check it on the
checkout and on a fake installed layout.

The wheel is built offline (``pip wheel --no-build-isolation``, with the setuptools that
requirements-dev.txt pins) from a copy of the repository, so that setuptools' ``build/`` and
``*.egg-info`` never land in the checkout. It must hold the ``tlcore`` and ``tlui`` packages
(every module), the dashboard's files and the demo dataset under ``share/tlcore-workbench/app/``
(where ``tlcore.appfiles`` looks for them), the ``tlcore`` console script and requirements.txt's
pins. Installed with ``--no-deps`` into a fresh virtual environment that sees this one's
packages and run from another folder, the installed ``tlcore`` must find its app files and its
demo under the environment's prefix: ``tlcore app`` serves the dashboard, ``tlcore datasets
restore-demo`` registers the demo, and the installed Home page runs and registers it too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
import tomllib
import urllib.request
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tlcore import __version__, appfiles
from tlcore.cli import _app
from tlcore.datasets import DEMO_PATH
from tlcore.errors import NotFoundError
from tlcore.workspace import DEMO_DATA_DIR

REPO = Path(__file__).resolve().parent.parent
DIST = "tlcore_workbench"
SHARE = appfiles.APP_SHARE_DIR.as_posix()  # share/tlcore-workbench/app
DATA = f"{DIST}-{__version__}.data/data/{SHARE}"

# One process builds the wheel once for every test that needs it.
pytestmark = pytest.mark.xdist_group("packaging")

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


def _fake_app(folder: Path, *, demo: bool = True) -> Path:
    """The dashboard's files (empty) under ``folder`` and, with ``demo``, an empty demo folder."""
    (folder / appfiles.PAGES_DIR).mkdir(parents=True)
    (folder / appfiles.MAIN_SCRIPT).write_text("")
    (folder / appfiles.CONFIG_FILE).parent.mkdir()
    (folder / appfiles.CONFIG_FILE).write_text("")
    if demo:
        (folder / appfiles.DEMO_DATA / DEMO_PATH.name).mkdir(parents=True)
    return folder


def test_in_the_checkout_the_app_files_and_the_demo_are_the_repositorys():
    assert appfiles.PACKAGE_ROOT == REPO and appfiles.search_dirs()[0] == REPO
    assert appfiles.find_app_dir() == REPO
    assert appfiles.demo_data_dir() == DEMO_DATA_DIR == REPO / "demo_data"
    assert DEMO_PATH == REPO / "demo_data" / "fashion-mnist-demo" and DEMO_PATH.is_dir()


def test_an_installed_copy_is_found_under_the_prefix_its_package_went_into(tmp_path):
    prefix = tmp_path / "venv"
    site_packages = prefix / "lib" / "python3.11" / "site-packages"
    site_packages.mkdir(parents=True)
    app = _fake_app(prefix / appfiles.APP_SHARE_DIR)
    assert appfiles.install_prefixes(site_packages)[0] == prefix
    assert Path(sys.prefix) in appfiles.install_prefixes(site_packages)
    dirs = appfiles.search_dirs(site_packages)
    assert dirs[:2] == [site_packages, app]
    assert appfiles.find_app_dir(dirs) == app.resolve()
    assert appfiles.demo_data_dir(dirs) == (app / "demo_data").resolve()

    # A checkout (the folder holding the imported package) wins over an installed copy.
    checkout = _fake_app(tmp_path / "checkout")
    dirs = appfiles.search_dirs(checkout, prefixes=[prefix])
    assert dirs == [checkout, app]
    assert appfiles.find_app_dir(dirs) == checkout.resolve()
    assert appfiles.demo_data_dir(dirs) == (checkout / "demo_data").resolve()


def test_missing_app_files_say_where_they_were_looked_for_and_a_missing_demo_is_no_error(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with pytest.raises(NotFoundError, match="dashboard's files") as err:
        appfiles.find_app_dir([a, b])
    assert f"looked in {a}, {b}" in str(err.value) and "pip install ." in str(err.value)
    assert appfiles.demo_data_dir([a, b]) == a / "demo_data"  # nothing there: ensure_demo registers nothing
    assert not (a / "demo_data").exists()

    _fake_app(a, demo=False)
    _fake_app(b)
    assert appfiles.find_app_dir([a, b]) == a.resolve()
    assert appfiles.demo_data_dir([a, b]) == (b / "demo_data").resolve()  # the first folder that has one


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


@pytest.mark.slow
def test_the_wheel_holds_every_module_of_tlcore_and_tlui_and_nothing_else(names):
    for package in ("tlcore", "tlui"):
        modules = _files(REPO, f"{package}/**/*.py")
        assert modules and modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    assert "tlcore/cli/_app.py" in names
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"tlcore", "tlui", f"{DIST}-{__version__}.dist-info", f"{DIST}-{__version__}.data"}


@pytest.mark.slow
def test_the_wheel_installs_the_dashboard_files_where_tlcore_app_looks(names):
    app = {n[len(DATA) + 1:] for n in names if n.startswith(DATA + "/")}
    expected = ({appfiles.MAIN_SCRIPT, appfiles.CONFIG_FILE.as_posix()} | _files(REPO, "pages/*.py")
                | _files(REPO, f"{appfiles.DEMO_DATA}/**/*"))
    assert expected <= app, f"missing from the wheel: {sorted(expected - app)}"
    assert len(_files(REPO, "demo_data/fashion-mnist-demo/**/*.png")) == 500


@pytest.mark.slow
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


@pytest.mark.slow
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
                 "--browser.gatherUsageStats=false"):
        assert flag in cmd
    # Every other option of config.toml too (the set changes with the app; a test below counts them).
    for flag in _app.config_flags(REPO / appfiles.CONFIG_FILE, skip={"server.headless"}):
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


@pytest.mark.slow
def test_a_missing_app_folder_is_a_one_line_error_with_a_fix(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tlcore", "app", "--app-dir", str(tmp_path)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: The folder given with --app-dir is not the workbench's app folder.")
    assert "streamlit_app.py" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
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
    app = (venv / appfiles.APP_SHARE_DIR).resolve()
    # The installed tlcore finds the installed app files and demo (there is no checkout around it).
    found = _run([str(python), "-c", "from tlcore import appfiles, workspace, datasets; "
                  "print(appfiles.find_app_dir(), workspace.DEMO_DATA_DIR, datasets.DEMO_PATH, sep='\\n')"], cwd=away)
    assert found.splitlines() == [str(app), str(app / "demo_data"), str(app / "demo_data" / "fashion-mnist-demo")]
    out = _run([str(tlcore), "app", "--dry-run"], cwd=away)
    assert f"App:       {app}" in out
    assert f"Workspace: {away / 'workspace'}" in out
    assert f"{app / 'streamlit_app.py'}" in out.splitlines()[-1]

    # The installed demo registers (it lies in a data root of every workspace).
    out = _run([str(tlcore), "--workspace", str(tmp_path / "cli-ws"), "datasets", "restore-demo"], cwd=away)
    demo = app / "demo_data" / DEMO_PATH.name
    assert out.strip() == f"The demo dataset is registered as 'demo' (500 images, {demo})."

    # The installed Home page runs (imports tlui and tlcore from the wheel, links its pages) and registers the demo.
    script = textwrap.dedent(f"""
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(app / 'streamlit_app.py')!r}, default_timeout=120).run()
        assert not at.exception, at.exception
        assert not at.error, at.error
        print("metrics:", ", ".join(f"{{m.label}}={{m.value}}" for m in at.metric))
    """)
    out = _run([str(python), "-c", script], cwd=away, env=_env(TLCORE_HOME=str(tmp_path / "ws")))
    assert "Datasets registered=1, Images=500," in out

    # `tlcore app` serves it: Streamlit accepts every flag made from config.toml and answers its health check.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "server.log"
    with open(log, "wb") as out_file:
        server = subprocess.Popen([str(tlcore), "app", "--server.port", str(port), "--server.address", "127.0.0.1",
                                   "--server.headless", "true"], cwd=away, env=_env(TLCORE_HOME=str(tmp_path / "ws")),
                                  stdout=out_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        deadline, health = time.monotonic() + 120, None
        while health is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    health = r.read().decode()
            except OSError:
                time.sleep(0.3)
        assert health == "ok", f"no health answer (exit status {server.poll()}):\n{log.read_text(errors='replace')}"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)


def test_a_background_process_gets_this_checkout_on_its_path_but_never_site_packages(monkeypatch):
    from tlcore import background

    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setattr(background, "PACKAGE_ROOT", Path("/src/tlcore-workbench"))
    assert background.child_env()["PYTHONPATH"] == os.pathsep.join(["/src/tlcore-workbench", "/elsewhere"])
    monkeypatch.setattr(background, "PACKAGE_ROOT", Path("/venv/lib/python3.11/site-packages"))
    assert background.child_env({"X": "1"})["PYTHONPATH"] == "/elsewhere"  # ahead of the stdlib otherwise
    assert background.child_env({"X": "1"})["X"] == "1"
