"""The ``search`` commands and ``worker`` (tlcore/cli/_search.py), each run through ``tlcore.cli.main``.

Every command is run in-process as a user types it: its happy path, and its bad input (an unknown
study, a bad spec file, a trial that cannot be failed, ...) ending in one clear ``error: ...`` line on
stderr and exit status 2 (argparse's own usage errors exit 2 too).

The session's finished tiny study (tests/helpers/searchfix.py's ``tiny_study``: three trials, trained once
per test session) is copied once for this module (``finished``) and only read here; the commands that
change a study work on a copy of their own (``run``, ``delete``) or on a study built by hand without
training (tests/helpers/handstudy.py: ``stop``, ``resume``, ``fail-trial``, ``worker``). ``search best``
prints a predict and an export command for its trial: both are run as printed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
import shlex
import shutil
import signal
import time
import types
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState, create_trial

from tests.helpers.clirun import assert_error, cli
from tests.helpers.handstudy import RUNG0, RUNG1, epoch_record, hand_study, hand_trial, outcomes_trials
from tests.helpers.runs import TINY_CLASSES
from tests.helpers.searchfix import STUDY, add_tiny_dataset, copy_workspace, tiny_spec, tiny_study
from tests.helpers.tflite import tflite_predict
from tests.helpers.yamlbombs import alias_bomb
from tlcore.cli import _search, build_parser, main
from tlcore.predict import load_model, predict_arrays, prepare_image
from tlcore.search import (
    WorkerState,
    attrs,
    describe_storage,
    list_studies,
    list_workers,
    load_spec,
    load_study,
    request_stop,
    stop_requested,
)
from tlcore.workspace import Workspace

# Shares the session's tiny study (tests/helpers/searchfix.py) with the Results page tests.
pytestmark = pytest.mark.xdist_group("tiny-study")

SEARCH_COMMANDS = {"create", "list", "run", "status", "best", "export-csv", "stop", "resume", "fail-trial", "delete"}
T0 = dt.datetime(2026, 1, 5, 9, 0, 0)


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch):
    """``--storage`` defaults to $TLCORE_STORAGE: these tests use the workspace journal."""
    monkeypatch.delenv("TLCORE_STORAGE", raising=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A private copy of the session's finished tiny study (3 complete trials); its study is never changed."""
    return copy_workspace(tiny_study(tmp_path_factory), tmp_path_factory.mktemp("cli-search") / "ws").root


@pytest.fixture(scope="module")
def best_number(finished) -> int:
    return load_study(Workspace(finished), STUDY).best_trial.number


@pytest.fixture
def fresh(tmp_path) -> Workspace:
    """An empty workspace with the tiny dataset registered."""
    ws = Workspace(tmp_path / "fresh")
    add_tiny_dataset(ws)
    return ws


@pytest.fixture
def own_copy(tmp_path_factory, tmp_path) -> Workspace:
    """A copy of the finished tiny study for a test that changes it."""
    return copy_workspace(tiny_study(tmp_path_factory), tmp_path / "copy")


@pytest.fixture
def signal_handlers_kept():
    """``worker`` installs SIGINT/SIGTERM handlers in this process: put pytest's back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_every_search_command_has_a_test_here():
    groups = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    search = groups.choices["search"]
    commands = next(a for a in search._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == SEARCH_COMMANDS and "worker" in groups.choices
    tests = [name for name in globals() if name.startswith("test_")]
    for command in [*commands, "worker"]:
        assert any(name.startswith(f"test_{command.replace('-', '_')}_") for name in tests), command


def test_search_without_a_command_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--workspace", str(tmp_path), "search"])
    assert info.value.code == 2
    assert "required: COMMAND" in capsys.readouterr().err


# ------------------------------------------------------------------ create
def test_create_stores_the_spec_as_a_new_study(fresh, tmp_path, capsys):
    spec_file = tmp_path / "study.yaml"
    spec_file.write_text(tiny_spec("made").to_yaml(), encoding="utf-8")
    code, out, err = cli(capsys, fresh.root, "search", "create", "--spec", spec_file)
    assert code == 0, err
    assert out.splitlines() == [f"Created study 'made' in {describe_storage(fresh, None)}.",
                                "Run it: python -m tlcore search run --study made --workers 1"]
    assert load_spec(fresh, "made") == tiny_spec("made")

    code, out, err = cli(capsys, fresh.root, "search", "create", "--spec", spec_file, "--name", "renamed")
    assert code == 0, err
    assert "Created study 'renamed'" in out and "--study renamed" in out
    assert load_spec(fresh, "renamed") == tiny_spec("renamed")
    assert sorted(s.name for s in list_studies(fresh)) == ["made", "renamed"]


@pytest.mark.parametrize("text, words", [
    (None, ["Cannot read the spec file.", "Check the path (No such file or directory)"]),
    ("- a\n- b\n", ["A StudySpec must be a mapping", "'field: value' per line"]),
    ("name: [unclosed\n", ["The StudySpec is not valid YAML", "line 2, column 1: expected ',' or ']'"]),
    ("name: x\ndataset: tiny\nbogus: 1\n", ["Unknown StudySpec field(s): bogus", "Known fields: "]),
    ("name: x\ndataset: tiny\nepochs: -1\n", ["epochs must be an integer [1, 10000]", "epochs=-1"]),
    ("name: x\ndataset: nope\n", ["The study's dataset 'nope' is not registered", "Registered datasets: "]),
    ("dataset: tiny\n", ["A study needs a name."]),
    ("name: x\ndataset: tiny\nweights: /no/such/file.weights.h5\n",
     ["The weights file does not exist.", "/no/such/file.weights.h5"]),
    (alias_bomb("backbones"), [r"aliases (*a0) are not allowed"]),
], ids=["missing", "not-a-mapping", "not-yaml", "unknown-field", "bad-value", "unknown-dataset", "no-name",
        "missing-weights", "alias-bomb"])
def test_create_refuses_a_bad_spec_file_and_creates_nothing(fresh, tmp_path, capsys, text, words):
    spec_file = tmp_path / "spec.yaml"
    if text is not None:
        spec_file.write_text(text, encoding="utf-8")
    err = assert_error(cli(capsys, fresh.root, "search", "create", "--spec", spec_file), *words)
    assert len(err.strip().splitlines()) == 1, err
    assert list_studies(fresh) == []


def test_create_refuses_a_name_already_taken(fresh, tmp_path, capsys):
    spec_file = tmp_path / "study.yaml"
    spec_file.write_text(tiny_spec("taken").to_yaml(), encoding="utf-8")
    assert cli(capsys, fresh.root, "search", "create", "--spec", spec_file)[0] == 0
    assert_error(cli(capsys, fresh.root, "search", "create", "--spec", spec_file),
                 "A study named 'taken' already exists.", "Choose another name")
    assert [s.name for s in list_studies(fresh)] == ["taken"]


# ------------------------------------------------------------------ list
def test_list_shows_each_study_with_its_progress(finished, capsys):
    study = load_study(Workspace(finished), STUDY)
    code, out, err = cli(capsys, finished, "search", "list")
    assert code == 0, err
    m = re.fullmatch(r"tiny-study: dataset tiny, 3/3 finished, 0 running, best val_accuracy (\S+)\n", out)
    assert m and float(m[1]) == pytest.approx(study.best_value, abs=1e-4), out

    code, out, err = cli(capsys, finished, "search", "list", "--json")
    assert code == 0, err
    [row] = json.loads(out)
    assert (row["name"], row["dataset"], row["direction"], row["objective"]) == (STUDY, "tiny", "maximize",
                                                                               "val_accuracy")
    assert (row["n_trials"], row["finished"], row["counts"], row["stop_requested"]) == (3, 3, {"COMPLETE": 3}, False)
    assert (row["best_trial"], row["best_value"]) == (study.best_trial.number, pytest.approx(study.best_value))


def test_list_on_a_workspace_without_studies(tmp_path, capsys):
    code, out, _ = cli(capsys, tmp_path, "search", "list")
    assert (code, out) == (0, "No studies yet. Create one with: python -m tlcore search create --spec FILE\n")
    code, out, _ = cli(capsys, tmp_path, "search", "list", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_list_refuses_a_storage_it_cannot_open(tmp_path, capsys):
    err = assert_error(cli(capsys, tmp_path, "search", "list", "--storage", "postgresql://u:s3cret@127.0.0.1:1/db"),
                       "Cannot open the study storage", "u:***@127.0.0.1:1/db", "Check the URL")
    assert "s3cret" not in err
    assert_error(cli(capsys, tmp_path, "search", "list", "--storage", "mysql://host/db"),
                 "The database driver for this storage is not installed")


def test_a_journal_path_that_is_a_folder_or_missing_is_refused_and_nothing_is_created(tmp_path, capsys):
    assert_error(cli(capsys, tmp_path, "search", "list", "--storage", tmp_path),
                 "The study storage is a folder, not a journal file", "studies.log")
    typo = tmp_path / "no" / "such.log"
    for argv in (["list"], ["status", "--study", "s"], ["best", "--study", "s"], ["stop", "--study", "s"]):
        assert_error(cli(capsys, tmp_path, "search", *argv, "--storage", typo),
                     "There is no study journal at this path", str(typo))
    assert_error(cli(capsys, tmp_path, "worker", "--study", "s", "--storage", typo), "no study journal")
    assert not typo.parent.exists()  # no empty journal (or folder) made by a typo


# ------------------------------------------------------------------ status
def test_status_shows_the_study_and_its_trial_table(finished, best_number, capsys, monkeypatch):
    trials = load_study(Workspace(finished), STUDY).get_trials()
    code, out, err = cli(capsys, finished, "search", "status", "--study", STUDY)
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(rf"study tiny-study: 3/3 finished \(3 complete, 0 pruned\), 0 running, 0 failed, 0 interrupted; "
                        rf"best val_accuracy \S+ \(trial {best_number}\)", lines[0]), lines[0]
    assert lines[1] == ""
    assert lines[2].split() == ["number", "state", "value", "freeze_depth", "learning_rate", "epochs",
                                "duration_s", "rungs", "error"]
    rows = [line.split() for line in lines[3:]]
    assert [(int(r[0]), r[1], int(r[3])) for r in rows] == [(t.number, "COMPLETE", t.params["freeze_depth"])
                                                           for t in trials]
    assert [float(r[2]) for r in rows] == pytest.approx([t.value for t in trials], abs=1e-4)
    assert [r[-1] for r in rows] == ["-"] * 3  # no error

    code, out, err = cli(capsys, finished, "search", "status", "--study", STUDY, "--json")
    assert code == 0, err
    records = json.loads(out)
    assert [(r["number"], r["state"]) for r in records] == [(t.number, "COMPLETE") for t in trials]
    assert [r["value"] for r in records] == pytest.approx([t.value for t in trials])


def test_status_says_how_far_each_trial_got_and_which_the_scout_seeded(fresh, capsys):
    seed = hand_trial(T0, 180, 300, value=0.8, freeze_depth=13,
                      history=[epoch_record(1, 0.5, 0, 0.111), epoch_record(2, 0.6, 1, 0.333), epoch_record(3, 0.8)],
                      **{attrs.RUNGS: [{**RUNG0, "value": 0.5}, {**RUNG1, "value": 0.6}], attrs.SEEDED: "scout"})
    failed = create_trial(state=TrialState.FAIL, user_attrs={attrs.ERROR: "out of memory"})  # no parameters
    hand_study(fresh, "s", [*outcomes_trials(T0), seed, failed])
    code, out, err = cli(capsys, fresh.root, "search", "status", "--study", "s")
    assert code == 0, err
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("number "))
    header = lines[at]
    assert header.split()[-2:] == ["rungs", "error"]
    rungs = [line[header.index("rungs"):header.index("error")].strip() for line in lines[at + 1:]]
    assert rungs == ["-", "11 % (diverged)", "11 % (pruned)", "11 % → 33 % → full", "11 %",
                     "11 % → 33 % → full (scout seed)", "-"]
    assert [line.split()[3] for line in lines[at + 1:]] == ["18", "15", "15", "15", "15", "13", "-"]  # freeze_depth

    code, out, err = cli(capsys, fresh.root, "search", "status", "--study", "s", "--json")
    assert code == 0, err
    records = json.loads(out)
    assert [r["rung_path"] for r in records] == [r if r != "-" else "" for r in rungs]
    assert [r["diverged"] is not None for r in records] == [False, True, False, False, False, False, False]


def test_status_folds_a_crashed_worker_whose_trial_has_ended_into_one_line(fresh, capsys):
    """A worker killed on a trial that was then run again (or failed) kept a "[crashed] trial 1 ... Caching
    train features" line in every status, after the study had finished."""
    import socket
    import subprocess
    import sys

    from tlcore.search.worker_state import workers_dir

    hand_study(fresh, "s", [hand_trial(T0, 0, 30, value=0.5, freeze_depth=14),
                            hand_trial(T0, 31, 60, value=0.6, freeze_depth=15)])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now belongs to no process: the worker is dead
    wdir = workers_dir(fresh, "s")
    wdir.mkdir(parents=True)
    (wdir / "dead.json").write_text(json.dumps({"worker_id": "dead", "pid": gone.pid, "host": socket.gethostname(),
                                                "state": "training", "trial": 1, "status": "Caching train features",
                                                "started": 2.0}))
    code, out, err = cli(capsys, fresh.root, "search", "status", "--study", "s")
    assert code == 0, err
    assert "[crashed]" not in out and "Caching train features" not in out
    assert f"1 worker(s) crashed earlier, on trials that have ended since (1); their logs are in {wdir}" in out


def test_status_says_a_worker_lost_the_database_rather_than_crashed(fresh, capsys):
    """A worker the study database's outage ended (``cause: storage``) was folded into "crashed earlier", as
    if it had failed; the status says what ended it and how to go on."""
    import socket
    import subprocess
    import sys

    from tlcore.search.worker_state import workers_dir

    hand_study(fresh, "s", [hand_trial(T0, 0, 30, value=0.5, freeze_depth=14)], n_trials=4)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    wdir = workers_dir(fresh, "s")
    wdir.mkdir(parents=True)
    (wdir / "w.json").write_text(json.dumps({"worker_id": "w", "pid": gone.pid, "host": socket.gethostname(),
                                             "state": "crashed", "cause": "storage", "started": 2.0}))
    code, out, err = cli(capsys, fresh.root, "search", "status", "--study", "s")
    assert code == 0, err
    assert "crashed" not in out, out
    assert ("1 worker(s) stopped when the study database stopped answering for longer than their patience "
            "(--storage-patience); it answers now, so start workers again: python -m tlcore search run --study s"
            in out), out


def test_status_of_an_unknown_study(finished, capsys):
    assert_error(cli(capsys, finished, "search", "status", "--study", "nope"),
                 "No study named 'nope'.", "Studies there: tiny-study.", "search create --spec FILE")


# ------------------------------------------------------------------ best
def test_best_prints_the_trial_and_commands_that_work(finished, best_number, tmp_path, capsys, monkeypatch):
    study = load_study(Workspace(finished), STUDY)
    best = study.best_trial
    code, out, err = cli(capsys, finished, "search", "best", "--study", STUDY)
    assert code == 0, err
    lines = out.splitlines()
    run_dir = finished / "studies" / "local" / STUDY / "trials" / str(best_number)
    m = re.fullmatch(rf"Best trial: {best_number} \(maximize value (\S+)\)", lines[0])
    assert m and float(m[1]) == pytest.approx(best.value, abs=1e-4), lines[0]
    assert lines[1] == f"  freeze_depth = {best.params['freeze_depth']}"
    assert lines[2].startswith("  learning_rate = ")
    assert float(lines[2].split(" = ")[1]) == pytest.approx(best.params["learning_rate"], rel=1e-2)
    m = re.fullmatch(r"Test accuracy: (\S+)   best epoch: (\d+)", lines[3])
    metrics = attrs.metrics(best)
    assert m and float(m[1]) == pytest.approx(metrics["test_accuracy"], abs=1e-4), lines[3]
    assert int(m[2]) == metrics["best_epoch"]
    assert lines[4] == f"Run folder: {run_dir}"
    assert (run_dir / "model.keras").is_file() and (run_dir / "labels.txt").is_file()

    # "Use it": the predict command, with an image of the tiny dataset in place of IMAGE...
    use = lines[5].removeprefix("Use it: ")
    assert use == f"python -m tlcore predict {run_dir} IMAGE..."
    image = sorted((finished / "photos" / "cat").glob("*.png"))[0]
    argv = shlex.split(use)[3:-1] + [str(image)]
    code, out_predict, err = cli(capsys, finished, *argv)
    assert code == 0, err
    prediction = r"(bird|cat|dog) \(\d{1,3}\.\d %\)"
    assert re.fullmatch(re.escape(f"{image}: ") + ", ".join([prediction] * 3) + "\n", out_predict), out_predict

    # "Export": run the command exactly as printed (its --out is relative: a fresh working folder).
    assert lines[6].startswith("Export: python -m tlcore export ") and len(lines) == 7
    argv = shlex.split(lines[6].removeprefix("Export: "))
    assert argv[:3] == ["python", "-m", "tlcore"]
    monkeypatch.chdir(tmp_path)
    code, out_export, err = cli(capsys, finished, *argv[3:])
    assert code == 0, err
    out_dir = tmp_path / f"{STUDY}-trial{best_number}-export"
    assert out_export.startswith("Exported keras, tflite to "), out_export
    assert {"model.keras", "model.tflite", "labels.txt", "model_card.json"} <= {p.name for p in out_dir.iterdir()}

    # The exported files load on their own (labels.txt beside them) and predict as the trial's run does.
    exported, original = load_model(out_dir / "model.keras"), load_model(run_dir)
    assert exported.class_names == original.class_names == list(TINY_CLASSES)
    x = np.stack([prepare_image(original, f) for f in sorted((finished / "photos").glob("*/*_000.png"))])
    reference = predict_arrays(original, x)
    assert predict_arrays(exported, x) == pytest.approx(reference, abs=1e-5)
    # The TFLite file returns the raw softmax (the card documents the calibration post-processing).
    raw = predict_arrays(original, x, calibrated=False)
    assert tflite_predict(out_dir / "model.tflite", x) == pytest.approx(raw, abs=1e-4)


def test_best_quotes_the_paths_in_its_commands(finished, capsys, monkeypatch):
    spaced = finished / "my runs" / "trial 0"
    monkeypatch.setattr("tlcore.search.fetch_trial_run", lambda *a, **k: spaced)
    code, out, err = cli(capsys, finished, "search", "best", "--study", STUDY)
    assert code == 0, err
    use, export = out.splitlines()[-2:]
    assert shlex.split(use.removeprefix("Use it: "))[4] == str(spaced)
    assert shlex.split(export.removeprefix("Export: "))[4] == str(spaced)


def test_best_as_json(finished, best_number, capsys):
    best = load_study(Workspace(finished), STUDY).best_trial
    code, out, err = cli(capsys, finished, "search", "best", "--study", STUDY, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["number"], info["state"], info["params"]) == (best_number, "COMPLETE", best.params)
    assert info["value"] == pytest.approx(best.value) and 0 <= info["test_accuracy"] <= 1
    assert Path(info["run_dir"]) == finished / "studies" / "local" / STUDY / "trials" / str(best_number)
    assert {"model.keras", "labels.txt", "spec.yaml"} <= set(info["artifacts"])


def test_best_of_a_study_without_a_usable_trial(finished, fresh, capsys):
    assert_error(cli(capsys, finished, "search", "best", "--study", "nope"), "No study named 'nope'.")
    hand_study(fresh, "waiting", [hand_trial(T0, 0, None, state=TrialState.RUNNING)])
    assert_error(cli(capsys, fresh.root, "search", "best", "--study", "waiting"),
                 "Study 'waiting' has no complete trial yet.", "Wait for a trial to finish")
    hand_study(fresh, "by-hand", outcomes_trials(T0))  # complete trials that saved no model
    assert_error(cli(capsys, fresh.root, "search", "best", "--study", "by-hand"),
                 "Trial 3 has no saved model (complete).", "choose a complete trial")


# ------------------------------------------------------------------ export-csv
def test_export_csv_to_standard_output_and_to_a_file(finished, tmp_path, capsys):
    trials = load_study(Workspace(finished), STUDY).get_trials()
    code, out, err = cli(capsys, finished, "search", "export-csv", "--study", STUDY)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(int(r["number"]), r["state"], int(r["params_freeze_depth"])) for r in rows] == [
        (t.number, "COMPLETE", t.params["freeze_depth"]) for t in trials]
    assert [float(r["value"]) for r in rows] == pytest.approx([t.value for t in trials])
    assert [float(r["params_learning_rate"]) for r in rows] == pytest.approx([t.params["learning_rate"]
                                                                             for t in trials])

    target = tmp_path / "trials.csv"
    code, written, err = cli(capsys, finished, "search", "export-csv", "--study", STUDY, "--out", target)
    assert (code, written, err) == (0, "", f"Wrote 3 trials to {target}\n")
    assert target.read_text() == out
    code, dashed, _ = cli(capsys, finished, "search", "export-csv", "--study", STUDY, "--out", "-")
    assert (code, dashed) == (0, out)


def test_export_csv_refuses_an_unknown_study_and_an_unwritable_file(finished, tmp_path, capsys):
    assert_error(cli(capsys, finished, "search", "export-csv", "--study", "nope"), "No study named 'nope'.")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_error(cli(capsys, finished, "search", "export-csv", "--study", STUDY, "--out", blocker / "t.csv"),
                 f"Could not write {blocker / 't.csv'}", "Check the disk")


def test_export_csv_into_a_folder_writes_the_table_there_under_the_studys_name(finished, tmp_path, capsys):
    """--out naming a folder said "Could not write …: Is a directory. Check the disk and the folder's
    permissions", which sent the user the wrong way."""
    code = main(["--workspace", str(finished), "search", "export-csv", "--study", STUDY, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0 and f"to {tmp_path / f'{STUDY}-trials.csv'}" in err, err
    assert (tmp_path / f"{STUDY}-trials.csv").read_text().startswith("number,")


# ------------------------------------------------------------------ stop, resume
@pytest.fixture
def stoppable(fresh) -> Workspace:
    """Study "s": trial 0 complete, 1 ended by an earlier stop (interrupted), 2 running."""
    hand_study(fresh, "s", [
        hand_trial(T0, 0, 30, value=0.5, freeze_depth=14),
        hand_trial(T0, 31, 40, state=TrialState.FAIL, freeze_depth=16, learning_rate=2e-3,
                   **{attrs.INTERRUPTED: True}),
        hand_trial(T0, 41, None, state=TrialState.RUNNING),
    ])
    return fresh


def test_stop_marks_the_study_stopped(stoppable, capsys):
    code, out, err = cli(capsys, stoppable.root, "search", "stop", "--study", "s")
    assert code == 0, err
    assert out == ("Stop requested for 's'; 0 local worker(s) signalled. "
                   "Resume with: python -m tlcore search resume --study s\n")
    assert stop_requested(stoppable, "s")
    assert cli(capsys, stoppable.root, "search", "list")[1].rstrip().endswith("[stopped]")


def test_stop_refuses_a_negative_wait(stoppable, capsys):
    for wait in ("-3", "nan", "inf"):
        assert_error(cli(capsys, stoppable.root, "search", "stop", "--study", "s", "--wait", wait),
                     "The time to wait for the workers must be a number of seconds, 0 or more.", f"wait={wait}")
    assert not stop_requested(stoppable, "s")


def test_stop_of_a_finished_study_changes_nothing(own_copy, capsys):
    """Its trial budget is spent: a stop flag would only make the next run wait for a resume."""
    code, out, err = cli(capsys, own_copy.root, "search", "stop", "--study", STUDY)
    assert (code, out) == (0, f"Study {STUDY!r} has finished its 3 trials and nothing is running: "
                              "there is nothing to stop.\n"), err
    assert not stop_requested(own_copy, STUDY)


def test_resume_queues_the_interrupted_trials_again(stoppable, capsys):
    ws = stoppable
    request_stop(ws, "s")
    code, out, err = cli(capsys, ws.root, "search", "resume", "--study", "s")
    assert code == 0, err
    assert out == ("Study 's' may run again; 1 interrupted trial(s) queued again. "
                   "Start workers: python -m tlcore search run --study s\n")
    assert not stop_requested(ws, "s")
    assert "[stopped]" not in cli(capsys, ws.root, "search", "list")[1]
    [again] = load_study(ws, "s").get_trials(states=(TrialState.WAITING,))
    assert attrs.retry_of(again) == 1
    code, out, _ = cli(capsys, ws.root, "search", "resume", "--study", "s")  # queued once only
    assert code == 0 and "0 interrupted trial(s) queued again" in out
    assert len(load_study(ws, "s").get_trials(states=(TrialState.WAITING,))) == 1


def test_stop_and_resume_of_an_unknown_study(stoppable, capsys):
    for command in ("stop", "resume"):
        assert_error(cli(capsys, stoppable.root, "search", command, "--study", "nope"),
                     "No study named 'nope'.", "Studies there: s.")
    assert not stop_requested(stoppable, "s")


# ------------------------------------------------------------------ fail-trial
def test_fail_trial_marks_a_running_trial_failed(fresh, capsys):
    hand_study(fresh, "s", outcomes_trials(T0))  # trial 4 is running
    code, out, err = cli(capsys, fresh.root, "search", "fail-trial", "--study", "s", "--trial", "4")
    assert (code, out) == (0, "Trial 4 of 's' marked failed.\n"), err
    trial = load_study(fresh, "s").trials[4]
    assert trial.state == TrialState.FAIL and attrs.error(trial) == "marked failed by the user"


def test_fail_trial_refuses_a_trial_it_cannot_fail(fresh, capsys):
    hand_study(fresh, "s", outcomes_trials(T0))
    before = [t.state for t in load_study(fresh, "s").trials]
    fail = ("search", "fail-trial", "--study")
    assert_error(cli(capsys, fresh.root, *fail, "s", "--trial", "0"),
                 "Trial 0 has already ended (complete).", "Only running or waiting trials")
    assert_error(cli(capsys, fresh.root, *fail, "s", "--trial", "9"), "Study 's' has no trial 9.", "Trials: 0 to 4.")
    assert_error(cli(capsys, fresh.root, *fail, "nope", "--trial", "0"), "No study named 'nope'.")
    with pytest.raises(SystemExit) as info:
        cli(capsys, fresh.root, *fail, "s", "--trial", "four")
    assert info.value.code == 2 and "invalid int value: 'four'" in capsys.readouterr().err
    assert [t.state for t in load_study(fresh, "s").trials] == before


# ------------------------------------------------------------------ delete
def test_delete_removes_the_study_its_trials_and_saved_models(own_copy, capsys):
    ws = own_copy
    artifacts = ws.root / "studies" / "artifacts"
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    saved = sum(len(attrs.artifacts(t)) for t in load_study(ws, STUDY).trials)
    assert len(files) == saved >= 3 * 5  # each complete trial saved its run folder's files
    code, out, err = cli(capsys, ws.root, "search", "delete", "--study", STUDY, "--yes")
    assert code == 0, err
    assert out == f"Deleted study 'tiny-study' and {len(files)} artifact file(s).\n"
    assert list_studies(ws) == [] and not [p for p in artifacts.rglob("*") if p.is_file()]
    assert not (ws.root / "studies" / "local" / STUDY).exists()
    assert_error(cli(capsys, ws.root, "search", "delete", "--study", STUDY, "--yes"), "No study named 'tiny-study'.")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_delete_asks_first(fresh, capsys, monkeypatch):
    hand_study(fresh, "s", outcomes_trials(T0))
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal: no one to ask
    assert_error(cli(capsys, fresh.root, "search", "delete", "--study", "s"),
                 "Deleting a study removes its trials and saved models for good.", "Add --yes to confirm.")
    monkeypatch.setattr("sys.stdin", _Terminal())
    answers = iter(["S", "s"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    code, out, _ = cli(capsys, fresh.root, "search", "delete", "--study", "s")
    assert (code, out) == (1, "Not deleted.\n") and [s.name for s in list_studies(fresh)] == ["s"]
    code, out, _ = cli(capsys, fresh.root, "search", "delete", "--study", "s")
    assert (code, out) == (0, "Deleted study 's' and 0 artifact file(s).\n") and list_studies(fresh) == []


# ------------------------------------------------------------------ run
def test_run_starts_a_worker_and_shows_the_study_until_it_ends(own_copy, capsys, monkeypatch):
    """The finished study given a fourth trial: the worker starts (a real background process) and is
    stopped while it still loads TensorFlow, so it finds the stop and exits without training."""
    ws = own_copy
    deadline = time.monotonic() + 180
    assert cli(capsys, ws.root, "search", "resume", "--study", STUDY, "--trials", "4")[0] == 0

    def sleep(seconds: float) -> None:  # look again every 0.2 s, not every 10 s; give up (Ctrl-C) after 3 min
        if not stop_requested(ws, STUDY):
            request_stop(ws, STUDY)  # the first look: the worker is still starting
        if time.monotonic() > deadline:
            raise KeyboardInterrupt
        time.sleep(min(seconds, 0.2))

    monkeypatch.setattr(_search, "time", types.SimpleNamespace(sleep=sleep, time=time.time, strftime=time.strftime))
    code, out, err = cli(capsys, ws.root, "search", "run", "--study", STUDY, "--workers", "1")
    assert code == 0, err
    workers_dir = ws.root / "studies" / "local" / STUDY / "workers"
    assert err == f"Started 1 worker(s) for 'tiny-study'; logs in {workers_dir}\n"
    lines = out.splitlines()
    assert lines[0].startswith("study tiny-study: 3/4 finished (3 complete, 0 pruned), 0 running, 0 failed, 0 interrupted; ")
    best = load_study(ws, STUDY).best_trial
    assert re.fullmatch(rf"Best trial {best.number}: val_accuracy \S+\. "
                        r"Details: python -m tlcore search best --study tiny-study", lines[-1]), lines[-1]
    [worker] = [w for w in list_workers(ws, STUDY) if w.log_path.is_file()]  # the study's own worker kept no log
    assert not worker.alive and worker.state == WorkerState.FINISHED
    assert "stopped: stop requested; ran trials []" in worker.log_path.read_text()
    assert len(load_study(ws, STUDY).trials) == 3


def test_run_refuses_a_finished_or_stopped_study_and_says_how_to_continue(own_copy, capsys):
    """It used to start workers that exited at once, and said nothing of why."""
    ws = own_copy
    err = assert_error(cli(capsys, ws.root, "search", "run", "--study", STUDY),
                       "Study 'tiny-study' has finished: 3 of its 3 trials are done",
                       "python -m tlcore search resume --study tiny-study --trials 13")
    assert "worker would exit at once" in err
    logs = ws.root / "studies" / "local"
    assert not list(logs.rglob("*.log"))  # no worker was started (the study's own worker kept no log)
    code, out, err = cli(capsys, ws.root, "search", "resume", "--study", STUDY, "--trials", "5")
    assert code == 0 and out.startswith("Study 'tiny-study': budget 5 trials.\n"), err
    assert load_spec(ws, STUDY).n_trials == 5
    request_stop(ws, STUDY)
    assert_error(cli(capsys, ws.root, "search", "run", "--study", STUDY),
                 "Study 'tiny-study' is stopped, so a worker would exit at once",
                 "Resume it first (python -m tlcore search resume --study tiny-study")
    assert not list(logs.rglob("*.log"))


def test_resume_of_a_stopped_study_that_has_finished_says_to_raise_the_budget(own_copy, capsys):
    """A study stopped after its last trial: 'run' said "Resume it first", 'resume' then said "Start
    workers", and 'run' then said it had finished: two detours before the one thing that helps."""
    ws = own_copy
    request_stop(ws, STUDY)
    assert_error(cli(capsys, ws.root, "search", "run", "--study", STUDY),
                 "Study 'tiny-study' is stopped and has finished: 3 of its 3 trials are done",
                 "python -m tlcore search resume --study tiny-study --trials 13")
    code, out, err = cli(capsys, ws.root, "search", "resume", "--study", STUDY)
    assert code == 0, err
    assert out == ("Study 'tiny-study' may run again, but it has finished its 3 trials: to search further, raise "
                   "its budget: python -m tlcore search resume --study tiny-study --trials 13\n")


def test_resume_refuses_a_budget_that_would_not_let_the_study_run(own_copy, capsys):
    for n in ("3", "2", "0"):
        assert_error(cli(capsys, own_copy.root, "search", "resume", "--study", STUDY, "--trials", n),
                     "The new trial budget must be more than 3", f"n_trials={n}")
    assert_error(cli(capsys, own_copy.root, "search", "resume", "--study", STUDY, "--trials", "200000"),
                 "n_trials must be an integer [1, 100000]")
    assert load_spec(own_copy, STUDY).n_trials == 3


def test_run_refuses_an_unknown_study_and_a_bad_worker_count(finished, capsys):
    assert_error(cli(capsys, finished, "search", "run", "--study", "nope"), "No study named 'nope'.")
    assert not (finished / "studies" / "local" / "nope").exists()
    for n in ("0", "65"):
        assert_error(cli(capsys, finished, "search", "run", "--study", STUDY, "--workers", n),
                     "The number of workers must be between 1 and 64.", f"Received: {n}")
    assert not list((finished / "studies" / "local").rglob("*.log"))  # no worker was started


# ------------------------------------------------------------------ worker
def test_worker_runs_until_the_budget_is_met(fresh, capsys, signal_handlers_kept):
    hand_study(fresh, "s", outcomes_trials(T0))  # 4 finished trials of a budget of 3
    code, out, err = cli(capsys, fresh.root, "worker", "--study", "s", "--worker-id", "w1")
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] worker w1: study 's', budget 3 trials", lines[0]), lines
    assert lines[-1].endswith("worker w1: stopped: budget met (4 trials finished); ran trials []")
    [worker] = list_workers(fresh, "s")
    assert (worker.worker_id, worker.state, worker.alive) == ("w1", WorkerState.FINISHED, False)


def test_a_patience_given_for_a_journal_is_said_to_do_nothing(fresh, capsys, signal_handlers_kept):
    hand_study(fresh, "s")
    code, out, err = cli(capsys, fresh.root, "worker", "--study", "s", "--max-trials", "0", "--storage-patience", "60")
    assert code == 0 and "note: --storage-patience is for a database storage" in err, err
    code, out, err = cli(capsys, fresh.root, "worker", "--study", "s", "--max-trials", "0")
    assert "note:" not in err


def test_worker_stops_after_its_max_trials(fresh, capsys, signal_handlers_kept):
    hand_study(fresh, "s")
    code, out, err = cli(capsys, fresh.root, "worker", "--study", "s", "--max-trials", "0")
    assert code == 0, err
    assert out.splitlines()[-1].endswith("stopped: ran its 0 trial(s); ran trials []")
    assert load_study(fresh, "s").trials == []


@pytest.mark.parametrize("flag, value, words", [
    ("--worker-index", "-1", "worker_index must be an integer [0, 2147483647]"),
    ("--max-trials", "-1", "max_trials must be an integer [0, 1000000]"),
    ("--heartbeat-interval", "0", "The heartbeat interval must be at least 1 second"),
    ("--heartbeat-interval", "-5", "The heartbeat interval must be at least 1 second"),
    ("--grace-period", "10", "The grace period must be longer than the heartbeat interval"),
    ("--storage-patience", "-1", "The storage patience must be between 0 and 86400 seconds"),
    ("--storage-patience", "nan", "The storage patience must be between 0 and 86400 seconds"),
])
def test_worker_refuses_bad_options_before_it_touches_the_study(fresh, capsys, signal_handlers_kept, flag, value,
                                                                   words):
    hand_study(fresh, "s")
    assert_error(cli(capsys, fresh.root, "worker", "--study", "s", flag, value), words, f"={value}")
    assert load_study(fresh, "s").trials == [] and list_workers(fresh, "s") == []


def test_worker_exits_1_when_its_trials_keep_failing(fresh, capsys, signal_handlers_kept):
    hand_study(fresh, "s")
    shutil.rmtree(fresh.get_dataset("tiny").path)  # still registered (a worker without it starts none); images gone
    code, out, _ = cli(capsys, fresh.root, "worker", "--study", "s")
    assert code == 1
    assert "stopped: 3 trials in a row failed with an error; see the log; ran trials [0, 1, 2]" in out
    trials = load_study(fresh, "s").trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3
    assert all("tiny" in attrs.error(t) for t in trials), [attrs.error(t) for t in trials]


def test_worker_of_an_unknown_study(fresh, capsys, signal_handlers_kept):
    assert_error(cli(capsys, fresh.root, "worker", "--study", "nope"), "No study named 'nope'.")


def test_a_worker_whose_database_stops_answering_ends_in_one_line(fresh, capsys, signal_handlers_kept, monkeypatch):
    """A PostgreSQL restart mid-trial: the worker then tried to write the trial's error into the storage
    that had gone, and died in a 150-line traceback ending in Optuna's "invalid data in the commit"."""
    import optuna
    import sqlalchemy.exc

    import tlcore.trainer
    from tlcore.search import worker_state

    hand_study(fresh, "s")
    written = []
    monkeypatch.setattr(attrs, "set_error", lambda trial, msg: written.append(msg))

    def gone(*args, **kwargs):
        cause = sqlalchemy.exc.OperationalError("UPDATE trials ...", {}, Exception(
            "server closed the connection unexpectedly"))
        raise optuna.exceptions.StorageInternalError(
            "An exception is raised during the commit. This typically happens due to invalid data in the "
            "commit, e.g. exceeding max length.") from cause

    monkeypatch.setattr(tlcore.trainer, "train", gone)
    code, out, err = cli(capsys, fresh.root, "worker", "--study", "s")
    assert code == 2 and written == [], err
    [line] = err.strip().splitlines()
    assert line.startswith("error: The study storage stopped answering (OperationalError: "), line
    assert "server closed the connection unexpectedly" in line and "invalid data" not in line
    assert "start workers again once the database answers" in line
    [w] = worker_state.list_workers(fresh, "s")
    assert w.record.reason.startswith("The study storage stopped answering") and w.state == "crashed"


def test_follow_up_commands_name_a_storage_given_with_storage_without_its_password(fresh, capsys, tmp_path,
                                                                                    monkeypatch):
    """`search create --storage X` printed "Run it: … search run --study S": followed as written, it ran
    against the workspace journal, another storage."""
    from tlcore.cli._search import _storage_arg

    monkeypatch.delenv("TLCORE_STORAGE", raising=False)
    journal = str(tmp_path / "shared journal.log")
    spec = tmp_path / "s.yaml"
    spec.write_text(tiny_spec("elsewhere").to_yaml())
    code, out, err = cli(capsys, fresh.root, "search", "create", "--spec", str(spec), "--storage", journal)
    assert code == 0, err
    assert f"Run it: python -m tlcore search run --study elsewhere --workers 1 --storage '{journal}'" in out
    code, out, err = cli(capsys, fresh.root, "search", "stop", "--study", "elsewhere", "--storage", journal)
    assert f"search resume --study elsewhere --storage '{journal}'" in out, (out, err)
    assert _storage_arg("postgresql://u:s3cr%40t@db:5432/t") == " --storage postgresql://u@db:5432/t"
    assert _storage_arg(None) == ""
    monkeypatch.setenv("TLCORE_STORAGE", journal)
    assert _storage_arg(journal) == ""  # the command finds it again in the environment
