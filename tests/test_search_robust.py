"""Search and study robustness against careless use: what a user gives by mistake is refused before
anything is written, read-only commands create nothing, and what is shown is the truth.

- A ``--storage`` that names an existing file which is not a study journal (notes, a CSV, an SQLite
  database given as a path) is refused, naming the file, and the file is left byte for byte as it
  was: Optuna used to append a journal record to it (glued to a last line without its newline), then
  the command died with a traceback, or told the user to delete lines of their own notes.
- A trial whose worker was killed stays RUNNING in the storage until a worker looks again: the
  summary, ``search status`` / ``search list`` and the Search page call it stalled (why, and what
  to do), not running, and only read the storage while doing so.
- A stopped or finished study is refused by ``search run`` and the page's Add workers with how to
  continue (``search resume --trials N`` raises a finished study's budget); they used to start
  workers that exited at once, in silence.
- ``--heartbeat-interval 0`` says the interval is wrong (not that the grace period is too short).
- A short database password is hidden where it stands as a value, not wherever its letters occur.
- ``models list``, ``predict trial:...``, ``search list`` / ``status`` on a fresh workspace (or a
  storage path that does not exist) create no folder and no journal.
- Damaged files of the scout (a saved result, a running scout's status) are named on the Search
  page and left untouched, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.helpers.clirun import assert_error, cli
from tests.helpers.handstudy import hand_study, hand_trial
from tests.helpers.pagetest import shown_text
from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore import search
from tlcore.errors import ConfigError, NotFoundError
from tlcore.scout import SCORES, latest_result, load_results, scout_status
from tlcore.search import create_study, list_studies, load_spec, load_study, open_storage
from tlcore.search import storage as storage_mod
from tlcore.search._urls import scrub_secrets
from tlcore.search.heartbeat import HEARTBEAT_ATTR
from tlcore.search.storage import check_heartbeat, default_journal_path, study_local_dir
from tlcore.workspace import Workspace

SEARCH = "pages/4_Search.py"
T0 = dt.datetime(2026, 1, 5, 9, 0, 0)


@pytest.fixture(autouse=True)
def _fresh_storages(monkeypatch):
    """Each test opens its storages afresh (the process keeps them open), with the workspace journal
    as the default storage."""
    monkeypatch.setattr(storage_mod, "_OPEN", {})
    monkeypatch.delenv("TLCORE_STORAGE", raising=False)


def _page() -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    at.switch_page(SEARCH)
    return at.run()


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now belongs to no process
    return gone.pid


# ------------------------------------------------------------------ 1. a file that is not a journal
FOREIGN = {
    "notes": b"my notes\nline two\n",
    "notes-no-newline": b"my notes",  # Optuna glued its record to this line
    "csv": b"a,b\n1,2\n",
    "json": b'{"rows": [1, 2]}\n',
    "binary": bytes(range(256)) * 4,
    "blank-lines": b"\n\n",
}


@pytest.fixture
def tiny_ws(workspace) -> Workspace:
    add_tiny_dataset(workspace)
    return workspace


@pytest.fixture
def spec_file(tiny_ws, tmp_path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(tiny_spec("s").to_yaml())
    return path


@pytest.mark.parametrize("content", list(FOREIGN.values()), ids=list(FOREIGN))
def test_create_refuses_a_file_that_is_not_a_journal_and_leaves_it_untouched(tiny_ws, spec_file, tmp_path, capsys,
                                                                             content):
    mine = tmp_path / "mine"
    mine.mkdir()
    target = mine / "user-file.txt"
    target.write_bytes(content)
    err = assert_error(cli(capsys, tiny_ws.root, "search", "create", "--spec", spec_file, "--storage", target),
                       "user-file.txt is not a study journal", f"Received: {target}.", "nothing was written",
                       "Name a new journal file")
    assert "damaged" not in err  # not "delete lines 1, 2" of the user's own notes
    assert target.read_bytes() == content
    assert [p.name for p in mine.iterdir()] == ["user-file.txt"]  # no lock file either


def test_every_command_with_a_storage_refuses_such_a_file(tiny_ws, tmp_path, capsys):
    target = tmp_path / "data.csv"
    target.write_bytes(FOREIGN["csv"])
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    for argv in (["search", "list"], ["search", "status", "--study", "s"], ["search", "stop", "--study", "s"],
                 ["search", "run", "--study", "s"],
                 ["predict", "trial:s:0", str(image)]):
        assert_error(cli(capsys, tiny_ws.root, *argv, "--storage", target), "data.csv is not a study journal")
    code, out, err = cli(capsys, tiny_ws.root, "models", "list", "--storage", target)
    assert code == 0 and "data.csv is not a study journal" in out + err  # a note: the rest is still listed
    with pytest.raises(ConfigError, match="is not a study journal"):
        open_storage(tiny_ws, f"journal:{target}")
    assert target.read_bytes() == FOREIGN["csv"]


def test_an_sqlite_database_given_as_a_path_is_refused_with_its_url(tiny_ws, spec_file, tmp_path, capsys):
    db = tmp_path / "studies.db"
    with sqlite3.connect(db) as con:
        con.execute("create table t (x)")
    before = db.read_bytes()
    assert_error(cli(capsys, tiny_ws.root, "search", "create", "--spec", spec_file, "--storage", db),
                 "studies.db is not a study journal", f"It is an SQLite database: give it as an SQLAlchemy URL, "
                                                      f"sqlite:///{db}")
    assert db.read_bytes() == before


def test_an_empty_file_a_real_journal_and_a_damaged_one_still_work_as_before(tiny_ws, spec_file, tmp_path, capsys):
    empty = tmp_path / "empty.log"
    empty.touch()
    code, out, err = cli(capsys, tiny_ws.root, "search", "create", "--spec", spec_file, "--storage", empty)
    assert code == 0 and "Created study 's'" in out, err
    storage_mod._OPEN.clear()  # another process
    assert [s.name for s in list_studies(tiny_ws, str(empty))] == ["s"]
    code, out, err = cli(capsys, tiny_ws.root, "search", "create", "--spec", spec_file, "--name", "t",
                         "--storage", empty)
    assert code == 0, err
    lines = empty.read_bytes().splitlines(keepends=True)
    lines.insert(2, b"junk\n")  # a journal damaged in the middle keeps its own message
    empty.write_bytes(b"".join(lines))
    storage_mod._OPEN.clear()
    assert_error(cli(capsys, tiny_ws.root, "search", "list", "--storage", empty), "damaged at line 3")
    folder = tmp_path / "folder"
    folder.mkdir()
    assert_error(cli(capsys, tiny_ws.root, "search", "create", "--spec", spec_file, "--storage", folder),
                 "The study storage is a folder, not a journal file")
    assert not list(folder.iterdir())


# ------------------------------------------------------------------ 2. a trial whose worker is gone
def _crashed_worker(ws: Workspace, name: str, trial: int) -> str:
    """A state file of this machine's worker ``w1``, killed (its pid is gone) while training ``trial``."""
    wdir = study_local_dir(ws, name) / "workers"
    wdir.mkdir(parents=True)
    (wdir / "w1.json").write_text(json.dumps({
        "worker_id": "w1", "pid": _dead_pid(), "host": socket.gethostname(), "state": "training",
        "trial": trial, "epoch": 2, "epochs": 4, "started": time.time()}))
    return "w1"


@pytest.fixture
def killed(tiny_ws) -> Workspace:
    """Study "k": trial 0 complete, trial 1 RUNNING whose worker was killed (kill -9) a moment ago, so its
    last heartbeat is recent; budget 3."""
    now = dt.datetime.now()
    study = hand_study(tiny_ws, "k", [hand_trial(T0, 0, 30, value=0.5),
                                      hand_trial(now - dt.timedelta(seconds=5), 0, None, state=TrialState.RUNNING)])
    running = study.get_trials(states=(TrialState.RUNNING,))[0]
    open_storage(tiny_ws).set_trial_system_attr(running._trial_id, HEARTBEAT_ATTR, time.time())
    _crashed_worker(tiny_ws, "k", 1)
    return tiny_ws


def test_a_trial_whose_worker_was_killed_is_stalled_not_running(killed, capsys):
    journal = default_journal_path(killed)
    before = journal.read_bytes()
    [s] = list_studies(killed)
    assert s.running == 1 and s.live == 0
    assert s.stalled == {1: f"its worker w1 (pid {json.loads((study_local_dir(killed, 'k') / 'workers' / 'w1.json').read_text())['pid']}, "
                            "on this machine) stopped without finishing"}
    assert search.stalled_trials(killed, "k") == s.stalled
    code, out, err = cli(capsys, killed.root, "search", "status", "--study", "k")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("study k: 1/3 finished (1 complete, 0 pruned), 0 running, 1 stalled, ")
    assert lines[1].startswith("  trial 1 stalled: its worker w1 (pid ")
    assert "python -m tlcore search run --study k" in lines[1]
    assert "python -m tlcore search fail-trial --study k --trial 1" in lines[1]
    assert any(line.split()[:2] == ["1", "STALLED"] for line in lines)
    assert ", 0 running, 1 stalled," in cli(capsys, killed.root, "search", "list")[1]
    code, out, _ = cli(capsys, killed.root, "search", "status", "--study", "k", "--json")
    assert [r["state"] for r in json.loads(out)] == ["COMPLETE", "RUNNING"]  # the storage's own states
    assert journal.read_bytes() == before  # only read: no trial was failed by looking
    assert load_study(killed, "k").trials[1].state == TrialState.RUNNING


def test_a_running_trial_without_a_heartbeat_for_the_grace_period_is_stalled_on_any_machine(tiny_ws):
    now = dt.datetime.now()
    hand_study(tiny_ws, "h", [hand_trial(now - dt.timedelta(minutes=10), 0, None, state=TrialState.RUNNING),
                              hand_trial(now - dt.timedelta(seconds=2), 0, None, state=TrialState.RUNNING)])
    [s] = list_studies(tiny_ws)  # no local worker: another machine's, or one whose state file is gone
    assert s.stalled == {0: "its worker has sent no heartbeat for over 60 s"}  # trial 1 has just started
    assert (s.running, s.live) == (2, 1)


def test_the_search_page_says_a_killed_workers_trial_is_stalled(killed):
    at = _page()
    assert not at.exception, [e.value for e in at.exception]
    warning = shown_text(at.warning)
    assert "Stalled. A trial shows as running, but no worker trains it any more (trial 1: its worker w1" in warning
    assert "press Add workers below to continue, or Mark failed to give it up" in warning
    assert "Searching" not in shown_text(at.info)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Running"] == "0"
    table = next(df.value for df in at.dataframe if "state" in df.value.columns and "number" in df.value.columns)
    assert table.set_index("number").loc[1, "state"] == "STALLED"
    assert at.selectbox(key="se_fail_pick::k").options == ["1"]  # it can still be marked failed
    assert "Running on workers elsewhere" not in shown_text(at.caption)


def test_the_results_page_does_not_count_a_stalled_trial_as_running(killed):
    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    at.query_params["study"] = "k"
    at.switch_page("pages/5_Results.py").run()
    assert not at.exception, [e.value for e in at.exception]
    running = next(m for m in at.metric if m.label == "Running")
    assert running.value == "0" and "Not counted: 1 stalled" in running.proto.help


def test_results_says_a_trial_failed_because_its_worker_died(tiny_ws):
    retry = hand_trial(T0, 60, 90, value=0.5)
    retry.system_attrs = {"failed_trial": 0}  # what Optuna's heartbeat retry records
    hand_study(tiny_ws, "d", [hand_trial(T0, 0, 50, state=TrialState.FAIL), retry])
    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    at.query_params["study"] = "d"
    at.switch_page("pages/5_Results.py").run()
    at.selectbox(key="rs_eval").set_value("d/0").run()
    assert not at.exception, [e.value for e in at.exception]
    assert ("Trial 0 failed (its worker stopped without finishing (no heartbeat); run again as trial 1)"
            in shown_text(at.info))


# ------------------------------------------------------------------ 3. a stopped or finished study
def test_add_workers_on_a_finished_study_says_why_and_raise_the_budget_lets_it_run(tiny_ws):
    hand_study(tiny_ws, "done", [hand_trial(T0, 10 * i, 10 * i + 9, value=0.5, freeze_depth=14) for i in range(3)])
    at = _page()
    at.button(key="se_add").click().run()
    assert not at.exception
    error = shown_text(at.error)
    assert "Study 'done' has finished: 3 of its 3 trials are done, so a worker would exit at once" in error
    assert "Raise the budget" in error
    assert not (study_local_dir(tiny_ws, "done") / "workers").exists()  # no worker was started
    at.number_input(key="se_budget::done").set_value(6).run()
    at.button(key="se_budget_go").click().run()
    assert not at.exception
    assert "Budget raised to 6 trials" in shown_text(at.success)
    assert load_spec(tiny_ws, "done").n_trials == 6


# ------------------------------------------------------------------ 4. heartbeat options
@pytest.mark.parametrize("interval, grace, words", [
    (0, 60, "The heartbeat interval must be at least 1 second"),
    (-1, 60, "The heartbeat interval must be at least 1 second"),
    (10, 10, "The grace period must be longer than the heartbeat interval"),
    (10, 5, "The grace period must be longer than the heartbeat interval"),
    (1.5, 60, "must be whole numbers of seconds"),
    (True, 60, "must be whole numbers of seconds"),
])
def test_heartbeat_options_are_refused_for_what_is_wrong_with_them(interval, grace, words):
    with pytest.raises(ConfigError) as info:
        check_heartbeat(interval, grace)
    assert words in info.value.message
    assert info.value.received == f"heartbeat_interval={interval!r}, grace_period={grace!r}"
    assert "heartbeat every 10 s and a grace period of 60 s" in info.value.fix


# ------------------------------------------------------------------ 5. short passwords
@pytest.mark.parametrize("url, text, shown", [
    ("postgresql://tl:a@db/x", 'FATAL: password authentication failed for user "tl" at a database',
     'FATAL: password authentication failed for user "tl" at a database'),
    ("postgresql://tl:a@db/x", "FATAL: password 'a' refused; url postgresql://tl:a@db/x",
     "FATAL: password '***' refused; url postgresql://tl:***@db/x"),
    ("postgresql://tl:db@h/studies", "could not connect: database studies; dbname=db password=db",
     "could not connect: database studies; dbname=*** password=***"),
    ("postgresql://h/x?password=ab", "password=ab refused for tab and lab", "password=*** refused for tab and lab"),
    ("postgresql://tl:s3cret@db/x", "FATAL: password 's3cret' refused; s3cretive s3cret.",
     "FATAL: password '***' refused; s3cretive ***."),
    ("postgresql://tl:p%40ss%21@db/x", "sent p@ss! (p%40ss%21)", "sent *** (***)"),
])
def test_a_password_is_hidden_where_it_occurs_whole_and_nowhere_else(url, text, shown):
    assert scrub_secrets(text, url) == shown


# ------------------------------------------------------------------ 6. read-only commands create nothing
def test_read_only_commands_on_a_fresh_workspace_create_nothing(tmp_path, capsys):
    root = tmp_path / "ws"
    root.mkdir()
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    code, out, err = cli(capsys, root, "models", "list")
    assert code == 0 and "No trained models yet" in out, err
    assert_error(cli(capsys, root, "predict", "trial:s:0", image), "No study named 's'.", "Studies there: none yet")
    assert_error(cli(capsys, root, "search", "status", "--study", "s"), "No study named 's'.")
    assert cli(capsys, root, "search", "list")[1].startswith("No studies yet.")
    missing = tmp_path / "missing.log"
    code, out, err = cli(capsys, root, "models", "list", "--storage", missing)
    assert code == 0 and "There is no study journal at this path" in out + err, (out, err)
    assert_error(cli(capsys, root, "predict", "trial:s:0", image, "--storage", missing), "No study named 's'.")
    assert not (root / "studies").exists() and not missing.exists()
    ws = Workspace(root)
    assert list_studies(ws, str(missing)) == [] and list_studies(ws, f"sqlite:///{tmp_path / 'm.db'}") == []
    with pytest.raises(NotFoundError, match="There is no study journal at this path"):
        open_storage(ws, str(missing))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws", "x.png"]
    assert not (root / "studies").exists()


def test_creating_a_study_still_makes_the_journal(tiny_ws):
    create_study(tiny_ws, tiny_spec("s"))
    assert default_journal_path(tiny_ws).is_file()
    assert [s.name for s in list_studies(tiny_ws)] == ["s"]


# ------------------------------------------------------------------ 7. damaged scout files
def _saved_scout(ws: Workspace, name: str, **over) -> Path:
    """A saved scout of the tiny dataset as ``save_result`` writes it (32 px, random weights), by hand."""
    rows = [{"backbone": "efficientnet_lite0", "depth": d, "width": 16, **{k: 0.1 * d for k in SCORES},
             "combined": float(19 - d), "combined_rank": 19 - d} for d in range(10, 19)]
    data = {"dataset": "tiny", "image_size": 32, "images": 15, "seconds": 1.0, "feature_seconds": 0.5,
            "cached": [], "notes": [], "weights": None, "resize_mode": "pad", "rows": rows, **over}
    folder = ws.root / "scouts" / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data))
    return path


DAMAGED = {
    "not-utf8": b"\xff\xfe\x00 garbage",
    "not-json": b"{ this is not json",
    "a-list": b"[1, 2, 3]",
    "rows-without-backbone": json.dumps({"dataset": "tiny", "image_size": 32, "images": 9, "seconds": 1,
                                         "weights": None, "rows": [{"x": 1}]}).encode(),
    "text-depth": json.dumps({"dataset": "tiny", "image_size": 32, "images": 9, "seconds": 1, "weights": None,
                              "rows": [{"backbone": "efficientnet_lite0", "depth": "deep"}]}).encode(),
}


@pytest.mark.parametrize("content", list(DAMAGED.values()), ids=list(DAMAGED))
def test_a_damaged_saved_scout_is_skipped_and_named_not_raised(tiny_ws, content):
    good = _saved_scout(tiny_ws, "20260101-000000-32px-15-efficientnet_lite0.json")
    bad = good.with_name("20260102-000000-32px-15-efficientnet_lite0.json")  # newer: read first
    bad.write_bytes(content)
    skipped: list[str] = []
    found = latest_result(tiny_ws, "tiny", image_size=32, backbones=["efficientnet_lite0"], weights=None,
                          skipped=skipped)
    assert found is not None and found.images == 15  # the good, older one
    assert len(skipped) == 1 and bad.name in skipped[0]
    assert bad.read_bytes() == content


def test_an_older_saved_scout_without_a_newer_score_still_reads():
    from tlcore.scout import ScoutResult

    rows = [{"backbone": "efficientnet_lite0", "depth": 12, "logme": 0.5, "combined_rank": 1}]
    res = ScoutResult.from_dict({"dataset": "tiny", "image_size": 32, "images": 9, "seconds": 1, "rows": rows})
    assert set(SCORES) <= set(res.table.columns) and np.isnan(res.table.loc[0, "logme_stack"])


def test_reading_the_scouts_of_a_dataset_never_scouted_creates_nothing(tiny_ws):
    assert load_results(tiny_ws, "tiny") == []
    assert not (tiny_ws.root / "scouts").exists()


@pytest.mark.parametrize("content", [b"\xff\xfe garbage", b"[1, 2]", b'{"state": "running", "done": "x"}'],
                         ids=["not-utf8", "a-list", "a-text-count"])
def test_a_damaged_status_of_a_scout_whose_process_is_gone_reads_as_failed(tmp_path, content):
    status = tmp_path / "run.status.json"
    status.write_bytes(content)
    log = tmp_path / "run.log"
    log.write_text("loading\nKilled\n")
    got = scout_status({"pid": _dead_pid(), "status": str(status), "log": str(log), "started": time.time()})
    assert got["state"] == "failed" and isinstance(got["error"], str)
    assert "done" not in got  # a count that is not a number is left out
    assert status.read_bytes() == content


def _on_tiny(at: AppTest) -> AppTest:
    at.selectbox(key="se_new_dataset").set_value("tiny")
    at.number_input(key="se_new_size").set_value(32)
    at.radio(key="se_new_weights").set_value("none")
    return at.run()


def test_the_scout_step_names_damaged_files_and_still_shows_the_good_result(tiny_ws):
    _saved_scout(tiny_ws, "20260101-000000-32px-15-efficientnet_lite0.json")
    bad = tiny_ws.root / "scouts" / "tiny" / "20260102-000000-32px-15-efficientnet_lite0.json"
    bad.write_bytes(DAMAGED["rows-without-backbone"])
    at = _on_tiny(_page())
    assert not at.exception, [e.value for e in at.exception]
    warning = shown_text(at.warning)
    assert f"1 saved scout file(s) of tiny could not be read and are not shown (they are left as they are): " \
           f"{bad.name}" in warning
    assert any("logme" in d.value.columns for d in at.dataframe)  # the good result is drawn
    assert bad.read_bytes() == DAMAGED["rows-without-backbone"]


def test_the_scout_step_says_a_running_scouts_status_file_is_damaged(tiny_ws):
    folder = tiny_ws.root / "scouts" / "tiny"
    folder.mkdir(parents=True)
    status = folder / "run-1.status.json"
    status.write_bytes(b"\xff\xfe garbage")
    at = AppTest.from_file("../streamlit_app.py", default_timeout=180)
    at.session_state["se_scout_run"] = {"pid": _dead_pid(), "log": str(folder / "run-1.log"), "status": str(status),
                                        "started": time.time(), "dataset": "tiny", "backbones": ["efficientnet_lite0"],
                                        "size": 32, "images": 15}
    at.switch_page(SEARCH)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    error = shown_text(at.error)
    assert "The scout failed: The scout's status could not be read: run-1.status.json is not UTF-8 text" in error
    assert status.read_bytes() == b"\xff\xfe garbage"


# ------------------------------------------------------------------ a restarted worker draws anew
def test_a_restarted_worker_draws_new_configurations_not_its_predecessors(workspace):
    """Each worker's sampler was seeded ``seed + worker_index`` only, so every restart (after a Ctrl-C,
    a resume, a crash) drew again the configurations the last worker with that index had drawn, and
    trained them twice. A fresh study is still seeded as before, so it stays reproducible."""
    import optuna
    from optuna.distributions import FloatDistribution

    from tlcore.search import run_worker
    from tlcore.search.study import make_sampler

    add_tiny_dataset(workspace)
    spec = tiny_spec("again", n_trials=3, epochs=1)
    create_study(workspace, spec)
    for _ in range(3):  # three worker processes in turn, one trial each
        run_worker(workspace, "again", max_trials=1, log=lambda s: None)
    trials = load_study(workspace, "again").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == 3, params

    def first_draw(sampler) -> float:
        return optuna.create_study(sampler=sampler).ask({"x": FloatDistribution(0, 1)}).params["x"]

    assert first_draw(make_sampler(spec)) == first_draw(optuna.samplers.TPESampler(seed=spec.seed))  # as ever
    assert first_draw(make_sampler(spec, 1)) == first_draw(optuna.samplers.TPESampler(seed=spec.seed + 1))
    assert first_draw(make_sampler(spec, 0, 2)) != first_draw(make_sampler(spec, 0, 1)) != first_draw(make_sampler(spec))


# ------------------------------------------------------------------ a worker that gave up says why
def test_the_search_page_says_why_the_last_worker_gave_up(workspace):
    """A worker stops after 3 trials in a row fail with an error; the Search page then said only
    "Idle: no worker is running. Start workers below", and a user pressed Add workers to fail again."""
    from tlcore.datasets import remove_dataset
    from tlcore.search import run_worker
    from tlui import search_widgets as sw

    add_tiny_dataset(workspace)
    create_study(workspace, tiny_spec("doomed", n_trials=6))
    remove_dataset(workspace, "tiny")  # every trial now fails on it
    result = run_worker(workspace, "doomed", log=lambda s: None)
    assert "3 trials in a row failed with an error" in result.reason
    snap = sw.poll_study(workspace, "doomed")
    kind, text = sw.status_sentence(snap.summary, snap)
    assert kind == "warning"
    assert text.startswith("Idle: the last worker gave up because 3 trials in a row failed with an error. "
                           "The last one failed with: No dataset is registered under that name"), text
    assert "Fix that first, then press Add workers" in text

    run_worker(workspace, "doomed", max_trials=0, log=lambda s: None)  # a later worker that ended normally
    snap = sw.poll_study(workspace, "doomed")
    assert sw.status_sentence(snap.summary, snap)[1].startswith("Idle: no worker is running.")


def test_the_trial_tables_show_a_trial_a_stop_ended_as_interrupted(workspace):
    """It showed as FAIL in the Search page's table while the counters beside it said interrupted."""
    from tlcore.search import attrs as at
    from tlui import results_widgets as rw
    from tlui import search_widgets as sw

    t0 = dt.datetime(2026, 1, 5, 9)
    hand_study(workspace, "s", [
        hand_trial(t0, 0, 10, value=0.5),
        hand_trial(t0, 11, 20, state=TrialState.FAIL, **{at.INTERRUPTED: True, at.ERROR: "interrupted"}),
        hand_trial(t0, 21, 30, state=TrialState.FAIL, **{at.ERROR: "out of memory"}),
    ])
    snap = sw.poll_study(workspace, "s")
    assert sw.trial_table(snap.frame).sort_values("number")["state"].tolist() == ["COMPLETE", "INTERRUPTED", "FAIL"]
    study = search.load_study(workspace, "s")
    table = rw.trial_table(search.load_study_frame(workspace, "s"), study.get_trials())
    assert table["state"].tolist() == ["COMPLETE", "INTERRUPTED", "FAIL"]
    assert search.load_study_frame(workspace, "s")["state"].tolist() == ["COMPLETE", "FAIL", "FAIL"]  # Optuna's
