"""Security checks that have no better home (see SECURITY.md for the whole review).

- The app never renders HTML: no ``unsafe_allow_html``, ``st.html`` or components
  in pages/, tlui/ or streamlit_app.py (a scan of the source); ``md_escape`` makes
  user text show literally, and Plotly labels are HTML-escaped.
- Models load in Keras' safe mode: every ``load_model`` call passes
  ``safe_mode=True`` or goes through ``tlcore.predict.load_model``; a .keras file
  with a Lambda layer is refused before its code runs.
- Nothing deserialises untrusted bytes with pickle, eval, unsafe YAML or
  ``np.load(allow_pickle=True)``, except the restricted torch reader; YAML from
  users may not use aliases ("billion laughs").
- Streamlit's own settings: XSRF protection on, uploads bounded.
- Storage URLs never show their password: not on a page, not in CLI output, not in
  a worker's log, not on a worker's command line.
- A page cannot make the server open a study journal outside the data roots, and a
  shared study storage cannot name trial files outside their folder.

Each scanner is first run on a snippet that breaks its rule, so a scanner that
stopped finding anything would fail here rather than pass silently.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.yamlbombs import alias_bomb
from tlcore.errors import AugmentationError, ConfigError, PathNotAllowedError
from tlcore.search import check_storage_location, describe_storage, open_storage
from tlcore.search._urls import scrub_secrets
from tlui.common import md_escape

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_FILES = sorted([REPO_ROOT / "streamlit_app.py", *(REPO_ROOT / "pages").glob("*.py"),
                    *(REPO_ROOT / "tlui").glob("*.py")])
CODE_FILES = sorted({*APP_FILES, *(REPO_ROOT / "tlcore").rglob("*.py")})
TORCH_READER = REPO_ROOT / "tlcore" / "backbones" / "_torchreader.py"
SECRET = "s3cretpw"
REFUSED_URL = f"postgresql://u:{SECRET}@127.0.0.1:1/nodb"  # nothing listens on port 1: refused at once


def _rel(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _dotted(node: ast.AST) -> str:
    """``st.components.v1.html`` for an attribute chain, "" for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _keyword(call: ast.Call, name: str) -> ast.keyword | None:
    return next((k for k in call.keywords if k.arg == name), None)


def _passed_unless_false(call: ast.Call, name: str) -> bool:
    """Whether ``call`` passes the keyword ``name`` with anything but a literal False."""
    kw = _keyword(call, name)
    return kw is not None and not _is_const(kw.value, False)


# ------------------------------------------------------------ HTML rendering
def html_uses(tree: ast.Module) -> list[str]:
    """Every place ``tree`` could render HTML: unsafe_allow_html not False, st.html, components."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if "components" in a.name]
        elif isinstance(node, ast.ImportFrom) and "components" in (node.module or "") + "".join(
                a.name for a in node.names):
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.split(".")[-1] in ("html", "iframe") or ".components." in f".{name}.":
                found.append(f"{name}(...)")
            if _passed_unless_false(node, "unsafe_allow_html"):
                found.append(f"{name}(unsafe_allow_html=...)")
    return found


def test_the_html_scanner_finds_what_it_looks_for():
    snippet = ast.parse(
        "import streamlit.components.v1 as components\n"
        "from streamlit import components as c2\n"
        "st.markdown(user, unsafe_allow_html=True)\n"
        "st.caption(user, unsafe_allow_html=flag)\n"
        "st.html(user)\n"
        "components.html(user)\n"
        "st.components.v1.iframe(url)\n"
        "st.markdown(user, unsafe_allow_html=False)\n"  # allowed
    )
    assert len(html_uses(snippet)) == 7


def test_the_app_never_renders_html():
    found = {_rel(p): uses for p in APP_FILES if (uses := html_uses(_parse(p)))}
    assert found == {}, "show user text with md_escape (or st.text/st.code), never as HTML"


@pytest.mark.parametrize("text, shown", [
    ("<script>alert(1)</script>", "\\<script\\>alert\\(1\\)\\<\\/script\\>"),
    ("[click](javascript:alert(1))", "\\[click\\]\\(javascript\\:alert\\(1\\)\\)"),
    ("![x](http://evil/x.png)", "\\!\\[x\\]\\(http\\:\\/\\/evil\\/x\\.png\\)"),
    (":red[big] $x^2$ *cat*", "\\:red\\[big\\] \\$x\\^2\\$ \\*cat\\*"),
    ("two\nlines\r# heading", "two lines \\# heading"),
])
def test_md_escape_makes_markdown_and_html_show_literally(text, shown):
    assert md_escape(text) == shown


def test_plotly_labels_from_user_text_are_html_escaped(workspace, make_image_tree):
    """Plotly renders a little HTML in labels: a class named like a tag shows as text."""
    import json

    from tlcore.datasets import add_dataset

    tag = "<img src=x onerror=alert(1)>"
    add_dataset(workspace, "odd", make_image_tree(workspace.root / "odd", {tag: 3, "plain": 3}))
    at = AppTest.from_file("../streamlit_app.py", default_timeout=120)
    at.switch_page("pages/1_Datasets.py")
    at.query_params["dataset"] = "odd"
    at.run()
    assert not at.exception
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in bars and tag not in bars


# ---------------------------------------------------------- model loading
def unsafe_model_loads(tree: ast.Module) -> list[str]:
    """``load_model`` calls that neither pass safe_mode=True nor go through tlcore.predict.load_model,
    any ``safe_mode=`` that is not True, and any switch that turns unsafe deserialisation on."""
    project_loader = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                      and node.module == "tlcore.predict" for a in node.names if a.name == "load_model"}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        safe = _keyword(node, "safe_mode")
        if safe is not None and not _is_const(safe.value, True):
            found.append(f"{name}(safe_mode=...)")
        elif name.endswith("enable_unsafe_deserialization"):
            found.append(f"{name}()")
        elif name.split(".")[-1] == "load_model" and name not in project_loader and safe is None:
            found.append(f"{name}(...) without safe_mode=True")
    return found


def test_the_model_load_scanner_finds_what_it_looks_for():
    snippet = ast.parse(
        "from keras.models import load_model\n"
        "load_model(p)\n"
        "keras.saving.load_model(p, compile=False)\n"
        "keras.models.load_model(p, safe_mode=False)\n"
        "tf.keras.models.load_model(p, safe_mode=flag)\n"
        "keras.config.enable_unsafe_deserialization()\n"
        "keras.saving.load_model(p, safe_mode=True)\n"  # allowed
    )
    assert len(unsafe_model_loads(snippet)) == 5
    project = ast.parse("from tlcore.predict import load_model\nload_model(run)\n")
    assert unsafe_model_loads(project) == []


def test_models_are_only_loaded_in_safe_mode():
    found = {_rel(p): loads for p in CODE_FILES if (loads := unsafe_model_loads(_parse(p)))}
    assert found == {}, "load models through tlcore.predict.load_model"


def test_a_keras_model_with_a_lambda_layer_is_refused_before_its_code_runs(tmp_path):
    import keras

    from tlcore.predict import load_model

    ran = tmp_path / "the-lambda-ran"
    marker = str(ran)
    inputs = keras.Input((8, 8, 3))
    # A stand-in for whatever a hostile model file would run when loaded.
    x = keras.layers.Lambda(lambda t: (__import__("pathlib").Path(marker).touch(), t)[1])(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    run = tmp_path / "run"
    run.mkdir()
    keras.Model(inputs, outputs).save(run / "model.keras")
    (run / "labels.txt").write_text("a\nb\n")
    ran.unlink(missing_ok=True)  # building the model above may have run it
    with pytest.raises(ConfigError, match="Lambda") as info:
        load_model(run)
    assert "Lambda layers are refused" in info.value.fix
    assert not ran.exists()
    keras.saving.load_model(run / "model.keras", safe_mode=False)
    assert ran.exists()  # what loading without safe mode would have run


# -------------------------------------------------- other deserialisation
def unsafe_deserialisation(tree: ast.Module, *, pickle_allowed: bool = False) -> list[str]:
    """pickle (outside the restricted torch reader), eval/exec, yaml.load/unsafe_load/full_load,
    torch.load, np.load with allow_pickle not False."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not pickle_allowed:
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"import {m}" for m in mods if m.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib")]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in ("eval", "exec", "torch.load", "yaml.load", "yaml.unsafe_load", "yaml.full_load",
                    "marshal.loads"):
            found.append(f"{name}(...)")
        if name.split(".")[-1] == "load" and name.split(".")[0] in ("np", "numpy") \
                and _passed_unless_false(node, "allow_pickle"):
            found.append(f"{name}(allow_pickle=...)")
    return found


def test_the_deserialisation_scanner_finds_what_it_looks_for():
    snippet = ast.parse(
        "import pickle\nfrom joblib import load\n"
        "eval(text)\nyaml.load(text)\nyaml.unsafe_load(text)\ntorch.load(f)\n"
        "np.load(f, allow_pickle=True)\n"
        "yaml.safe_load(text)\nnp.load(f, allow_pickle=False)\nnp.load(f)\n"  # allowed
    )
    assert len(unsafe_deserialisation(snippet)) == 7


def test_nothing_deserialises_untrusted_bytes_unsafely():
    found = {_rel(p): uses for p in CODE_FILES
             if (uses := unsafe_deserialisation(_parse(p), pickle_allowed=p == TORCH_READER))}
    assert found == {}
    assert "pickle.Unpickler" in TORCH_READER.read_text()  # the exception above is the restricted reader


class _MakesADirWhenUnpickled:
    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_the_array_cache_never_unpickles(tmp_path):
    """The cache is where tlcore reads .npy files back: a pickled object array is dropped, never run."""
    from tlcore.cache import ArrayCache, cache_key

    cache = ArrayCache(tmp_path / "cache", mmap=False)
    cache.put({"k": 1}, np.zeros(1))
    ran = tmp_path / "the-pickle-ran"
    evil = np.array([_MakesADirWhenUnpickled(ran)], dtype=object)
    np.save(tmp_path / "cache" / f"{cache_key({'k': 1})}.npy", evil, allow_pickle=True)
    assert cache.get({"k": 1}) is None  # treated as a damaged entry and removed
    assert not ran.exists()
    np.save(tmp_path / "probe.npy", evil, allow_pickle=True)
    np.load(tmp_path / "probe.npy", allow_pickle=True)
    assert ran.exists()  # what a loader that allowed pickles would have run


# ---------------------------------------------------------- YAML uploads
@pytest.mark.parametrize("load", ["study spec", "train spec", "augmentation", "workspace settings"])
def test_yaml_aliases_are_refused_before_anything_expands_them(workspace, load):
    """A "billion laughs" file: safe_load builds it cheaply, then validating or printing it hangs."""
    from tlcore import augment as au
    from tlcore.config import TrainSpec
    from tlcore.search import StudySpec
    from tlcore.workspace import Workspace

    text = alias_bomb("backbones" if load == "study spec" else "steps")
    with pytest.raises((ConfigError, AugmentationError), match=r"aliases \(\*a0\) are not allowed"):
        if load == "study spec":
            StudySpec.from_yaml(text)
        elif load == "train spec":
            TrainSpec.from_yaml(text)
        elif load == "augmentation":
            au.parse_spec_text(text)
        else:
            workspace.settings_path.write_text(text)
            Workspace(workspace.root).settings()
    plain = "name: s\ndataset: demo\nbackbones: [efficientnet_lite0]\n"
    assert StudySpec.from_yaml(plain).backbones == ["efficientnet_lite0"]  # YAML without aliases still loads


# ------------------------------------------------------ Streamlit settings
@pytest.fixture
def project_streamlit_config(monkeypatch, tmp_path):
    """Streamlit's config as ``streamlit run`` in the repository sees it (no user config in ~)."""
    from streamlit import config

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(REPO_ROOT)
    config.get_config_options(force_reparse=True)
    yield config
    monkeypatch.undo()
    config.get_config_options(force_reparse=True)


def test_streamlit_protects_against_xsrf_and_bounds_uploads(project_streamlit_config):
    config = project_streamlit_config
    ours = str(REPO_ROOT / ".streamlit" / "config.toml")
    server = tomllib.loads(Path(ours).read_text(encoding="utf-8"))["server"]
    assert server["enableXsrfProtection"] is True and server["enableCORS"] is True
    assert 1 <= server["maxUploadSize"] <= 1024  # MB

    for key in ("server.enableXsrfProtection", "server.enableCORS", "server.maxUploadSize"):
        assert config.get_where_defined(key) == ours, key
    assert config.get_option("server.enableXsrfProtection") is True
    assert config.get_option("server.enableCORS") is True
    assert config.get_option("server.maxUploadSize") == server["maxUploadSize"]
    from streamlit.web.server.server_util import is_xsrf_enabled

    assert is_xsrf_enabled()


# -------------------------------------------------------------- passwords
@pytest.mark.parametrize("url, shown", [
    (f"postgresql://u:{SECRET}@db.example:5432/studies", "postgresql://u:***@db.example:5432/studies"),
    (f"postgresql+psycopg://u:p@ss:{SECRET}@db/studies", "postgresql+psycopg://u:***@db/studies"),
    (f"mysql://db/studies?user=u&password={SECRET}&ssl=1", "mysql://db/studies?user=u&password=***&ssl=1"),
    ("postgresql://u@db/studies", "postgresql://u@db/studies"),
    ("sqlite:////data/studies.db", "sqlite:////data/studies.db"),
])
def test_storage_urls_are_described_without_their_password(workspace, url, shown):
    assert describe_storage(workspace, url) == shown


def test_the_optuna_dashboard_command_has_no_password(workspace):
    from tlcore.search import dashboard_command

    command = dashboard_command(workspace, REFUSED_URL)
    # no "***" either: optuna-dashboard would send it as the password; without one, libpq reads ~/.pgpass
    assert SECRET not in command and "***" not in command and " postgresql://u@127.0.0.1:1/nodb " in command
    assert "~/.pgpass" in command


def test_scrub_secrets_removes_plain_and_url_encoded_passwords():
    url = "postgresql://u:p%40ss%2Fword@db/x"
    assert scrub_secrets("bad login p%40ss%2Fword / p@ss/word", url) == "bad login *** / ***"
    assert scrub_secrets("nothing to hide", None) == "nothing to hide"


def test_a_driver_error_that_quotes_the_url_is_scrubbed(workspace, monkeypatch):
    from tlcore.search import storage

    def echoing_driver(url, **kwargs):
        raise RuntimeError(f"could not connect to {url}")

    monkeypatch.setattr(storage, "PatientRDBStorage", echoing_driver)
    with pytest.raises(ConfigError, match="Cannot open the study storage") as info:
        open_storage(workspace, f"postgresql://u:{SECRET}@db.invalid/x?password={SECRET}")
    assert SECRET not in str(info.value)


def _run_cli(*argv: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "tlcore", *argv], cwd=REPO_ROOT, env=full_env,
                          timeout=300, **kw)


def test_the_cli_never_prints_the_password(workspace):
    res = _run_cli("--workspace", str(workspace.root), "search", "list", "--storage", REFUSED_URL,
                   capture_output=True, text=True)
    assert res.returncode == 2
    assert SECRET not in res.stdout + res.stderr
    assert "Cannot open the study storage" in res.stderr and "u:***@127.0.0.1:1/nodb" in res.stderr
    assert "Check the URL" in res.stderr  # the way out


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_worker_never_logs_the_password(workspace, how):
    """A worker started the way launch_workers starts one: output into a log in the workspace."""
    log = workspace.root / "studies" / "local" / "s" / "workers" / "w.log"
    log.parent.mkdir(parents=True)
    argv = ["--workspace", str(workspace.root), "worker", "--study", "s", "--worker-id", "w"]
    with open(log, "wb") as out:
        if how == "flag":
            res = _run_cli(*argv, "--storage", REFUSED_URL, stdout=out, stderr=subprocess.STDOUT)
        else:
            res = _run_cli(*argv, env={"TLCORE_STORAGE": REFUSED_URL}, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text()
    assert res.returncode == 2
    assert "Cannot open the study storage" in text and "u:***@127.0.0.1:1/nodb" in text  # clear, and the URL used
    for path in workspace.root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_launched_workers_get_the_storage_url_from_the_environment(workspace, monkeypatch):
    """A command line is readable by every user of the machine (ps); the environment is not."""
    from tlcore import background
    from tlcore.search import local

    started = []

    class FakeProcess:
        pid = 999_999

        def __init__(self, cmd, **kw):
            started.append((cmd, kw["env"]))

    monkeypatch.setattr("tlcore.search.study.check_runnable", lambda *a, **k: None)
    monkeypatch.setattr("tlcore.search.study.check_dataset_here", lambda *a, **k: "tiny")
    monkeypatch.setattr(background.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(background, "_CHILDREN", {})
    monkeypatch.setenv(local.STORAGE_ENV, "left-over-from-the-shell.log")
    local.launch_workers(workspace, "s", 1, REFUSED_URL)
    local.launch_workers(workspace, "s", 1, None)
    (cmd, env), (cmd_default, env_default) = started
    assert SECRET not in " ".join(cmd) and "--storage" not in cmd
    assert env[local.STORAGE_ENV] == REFUSED_URL
    assert local.STORAGE_ENV not in env_default  # the workspace journal, not the shell's storage
    for state in (workspace.root / "studies" / "local" / "s" / "workers").glob("*.json"):
        assert SECRET not in state.read_text()


def _results_page() -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=120)
    at.switch_page("pages/5_Results.py")
    return at.run()


def _shown_text(at: AppTest) -> str:
    """Everything the page shows as text (not the widgets' own values)."""
    kinds = ("error", "warning", "info", "success", "markdown", "caption", "code", "text", "title", "exception")
    return " ".join(str(getattr(e, "value", "")) for kind in kinds for e in at.get(kind)).replace("\\", "")


def test_the_results_page_never_shows_the_password(workspace):
    at = _results_page()
    at.text_input(key="rs_storage").set_value(REFUSED_URL).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error).replace("\\", "")
    assert "Cannot open the study storage" in errors and "u:***@127.0.0.1:1/nodb" in errors
    assert SECRET not in _shown_text(at)
    at.text_input(key="rs_storage").set_value("").run()  # the page still works
    assert not at.exception and not at.error
    assert "No studies in this workspace yet" in _shown_text(at)


# ------------------------------------------------------------ data roots
def test_trial_files_from_a_storage_cannot_leave_their_folders(workspace):
    """A shared study storage names the trial files to download: a name or id that climbs out is refused."""
    import optuna
    from optuna.trial import create_trial

    from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
    from tlcore.search import artifact_store, create_study, fetch_trial_run

    store = artifact_store(workspace)
    for bad_id in ("../escaped", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="bad artifact id"):
            store.open_reader(bad_id)
    add_tiny_dataset(workspace)
    study = create_study(workspace, tiny_spec("shared"))
    lr = optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)
    for files in ({"model.keras": "x", "../../evil.keras": "y"}, {"model.keras": "x", ".bashrc": "y"}):
        study.add_trial(create_trial(value=0.5, params={"learning_rate": 1e-3}, distributions={"learning_rate": lr},
                                     user_attrs={"tl_artifacts": files}))
    for number, bad in ((0, "../../evil.keras"), (1, ".bashrc")):
        with pytest.raises(ConfigError, match="unsafe file name") as info:
            fetch_trial_run(workspace, "shared", number)
        assert bad in str(info.value) and info.value.fix
    assert not list(workspace.root.rglob("evil.keras")) and not list(workspace.root.rglob(".bashrc"))


def test_storage_files_outside_the_data_roots_are_refused(workspace, tmp_path):
    inside = workspace.root / "shared" / "journal.log"
    assert check_storage_location(workspace, None) is None
    assert check_storage_location(workspace, str(inside)) == str(inside)
    assert check_storage_location(workspace, f"sqlite:///{inside.with_suffix('.db')}")
    assert check_storage_location(workspace, REFUSED_URL) == REFUSED_URL  # a server, not a file here
    (workspace.root / "link").symlink_to(tmp_path)
    for outside in (str(tmp_path / "journal.log"), f"journal:{tmp_path}/x.log", f"sqlite:///{tmp_path}/x.db",
                    str(workspace.root / ".." / "x.log"), str(workspace.root / "link" / "x.log")):
        with pytest.raises(PathNotAllowedError, match="outside the allowed data roots"):
            check_storage_location(workspace, outside)


def test_the_results_page_does_not_open_a_journal_outside_the_data_roots(workspace, tmp_path):
    target = tmp_path / "elsewhere" / "evil.log"
    at = _results_page()
    at.text_input(key="rs_storage").set_value(str(target)).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error).replace("\\", "")
    assert "outside the allowed data roots" in errors and "allow-root" in errors
    assert not target.parent.exists()  # nothing created there
    inside = workspace.root / "shared" / "journal.log"
    at.text_input(key="rs_storage").set_value(str(inside)).run()  # one under the roots opens
    assert not at.exception and not at.error
    assert not inside.exists()  # a page that only reads creates no journal
    assert "No studies in this storage yet" in _shown_text(at)
