"""README "Scaling out" as a user follows it: a study in PostgreSQL, workers in several workspaces that
share an artifact folder, and the mistakes a careless user makes on the way (a password not
percent-encoded, the ``postgres://`` spelling, another driver named, a wrong password, a worker where the
dataset is not registered, a trial whose model is in another artifact folder)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers.clirun import assert_error, cli
from tests.helpers.handstudy import hand_trial
from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.errors import ConfigError, WorkspaceError
from tlcore.search import create_study, open_storage
from tlcore.search._urls import redact_url
from tlcore.search.local import launch_workers
from tlcore.search.results import fetch_trial_run
from tlcore.search.storage import study_local_dir
from tlcore.workspace import Workspace

PASSWORD = "pa@ss:w/rd%9x"  # what README's example passwords need encoded
PIECES = ("pa@ss", "w/rd", "rd%9x", "'w'", "ss:w")  # fragments an unencoded URL's parse error quoted


@pytest.mark.parametrize("url", [
    f"postgresql://tlcore:{PASSWORD}@127.0.0.1:1/tlcore",
    "postgresql://tlcore:100%sure@127.0.0.1:1/tlcore",
    "postgresql+psycopg://tl:a/b@127.0.0.1:1/tlcore",
])
def test_a_password_not_percent_encoded_is_explained_without_its_pieces(workspace, url):
    # Before: "Cannot open the study storage: invalid literal for int() with base 10: 'w'" (a piece of
    # the password, read by SQLAlchemy as the port) and "Check the URL".
    with pytest.raises(ConfigError) as info:
        open_storage(workspace, url)
    text = str(info.value)
    assert "must be percent-encoded" in text and "%40" in text and "~/.pgpass" in text, text
    assert "int()" not in text
    for piece in PIECES + ("100%sure", "a/b"):
        assert piece not in text, (piece, text)


def test_the_postgres_scheme_says_to_write_postgresql(workspace, fresh_postgres_url):
    # Before: "Can't load plugin: sqlalchemy.dialects:postgres", and "Check the URL".
    typo = "postgres" + fresh_postgres_url[len("postgresql"):]
    with pytest.raises(ConfigError) as info:
        open_storage(workspace, typo)
    assert "postgresql://" in info.value.fix and "Can't load plugin" not in str(info.value)
    assert redact_url(fresh_postgres_url) in info.value.fix  # the corrected URL, its password hidden
    open_storage(workspace, fresh_postgres_url)


def test_another_postgresql_driver_says_which_and_what_to_write(workspace, fresh_postgres_url):
    pytest.importorskip("psycopg")
    try:
        import psycopg2  # noqa: F401
        pytest.skip("psycopg2 is installed here")
    except ImportError:
        pass
    # Before: "Failed to import DB access module ... Please install appropriate one.." and
    # "pip install 'psycopg[binary]'", which is installed already.
    url = fresh_postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    with pytest.raises(ConfigError) as info:
        open_storage(workspace, url)
    assert "'psycopg2'" in str(info.value) and "Write postgresql://" in info.value.fix
    assert ".." not in str(info.value)


def test_a_refused_password_says_where_passwords_go(workspace, monkeypatch):
    from tlcore.search import storage as storage_mod

    class Refused(Exception):
        pass

    def refuse(*a, **kw):
        raise Refused('(psycopg.OperationalError) connection failed: connection to server at "db", port 5432 '
                      'failed: FATAL:  password authentication failed for user "tlcore"')

    monkeypatch.setattr(storage_mod, "PatientRDBStorage", refuse)
    with pytest.raises(ConfigError) as info:
        open_storage(workspace, "postgresql://tlcore:wrong-one@db:5432/tlcore")
    assert "~/.pgpass" in info.value.fix and "PGPASSWORD" in info.value.fix and "percent-encoded" in info.value.fix
    assert "wrong-one" not in str(info.value)


def test_a_worker_where_the_dataset_is_not_registered_takes_no_trial(tmp_path, capsys, fresh_postgres_url):
    # Before: the worker took three trials from the shared storage, failed each ("No dataset is registered
    # under that name"), and gave up: the study's trials, and the retry of a trial it took over, spent.
    first, other = Workspace(tmp_path / "ws1"), Workspace(tmp_path / "ws2")
    add_tiny_dataset(first)
    create_study(first, tiny_spec("far", n_trials=3), fresh_postgres_url)
    err = assert_error(cli(capsys, other.root, "worker", "--study", "far", "--storage", fresh_postgres_url),
                       "not registered in this workspace", "datasets add tiny")
    assert "Traceback" not in err
    with pytest.raises(Exception, match="not registered in this workspace"):
        launch_workers(other, "far", 1, fresh_postgres_url)
    assert optuna.load_study(study_name="far", storage=fresh_postgres_url).get_trials() == []
    assert not (study_local_dir(other, "far") / "workers").exists()


def test_a_trial_in_another_artifact_folder_names_the_folder_looked_in(tmp_path, fresh_postgres_url):
    # Before: "Point --artifacts at the folder ...", on the Results page and for 'predict trial:S:N',
    # which have no --artifacts; and the failed read left an empty studies/artifacts folder, into which
    # the README's "symlink the shared artifact folder there" (ln -s) then made its link.
    ws = Workspace(tmp_path / "ws")
    add_tiny_dataset(ws)
    study = create_study(ws, tiny_spec("far", n_trials=3, probe_first=False), fresh_postgres_url)
    import datetime as dt

    study.add_trial(hand_trial(dt.datetime(2026, 1, 1), 0, 10, value=0.5,
                               tl_artifacts={"model.keras": "0e525c13-e94f-47ca-9d94-715d9488ae8e"}))
    assert study.get_trials()[0].state == TrialState.COMPLETE
    own = ws.root / "studies" / "artifacts"
    with pytest.raises(WorkspaceError) as info:
        fetch_trial_run(ws, "far", 0, fresh_postgres_url)
    assert str(own) in str(info.value) and "symlink" in info.value.fix and "--artifacts" in info.value.fix
    assert not own.exists()  # nothing made where the shared folder is to be linked
    shared = tmp_path / "shared"
    with pytest.raises(WorkspaceError) as info:
        fetch_trial_run(ws, "far", 0, fresh_postgres_url, artifacts=str(shared))
    assert str(shared) in str(info.value) and "symlink" not in info.value.fix
    assert not shared.exists()
