"""The model catalogue (tlcore.catalog): runs, search trials with a saved model, exports, keys."""

from __future__ import annotations

import datetime as dt

import pytest
from optuna.trial import TrialState

from tests.helpers.handmodel import channel_model, upload_trial_run, write_export_folder, write_model_folder
from tests.helpers.handstudy import epoch_record, hand_study, hand_trial
from tests.helpers.runs import TINY_CLASSES
from tlcore.catalog import (
    export_name,
    list_catalog,
    model_folder,
    parse_key,
    resolve,
    run_key,
    trial_key,
)
from tlcore.errors import ConfigError, NotFoundError
from tlcore.predict import load_model

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture(scope="module")
def hand_keras():
    return channel_model(3, 8)


@pytest.fixture
def ws(workspace, hand_keras):
    """A run, a study (trials 0 and 1 saved a model, 1 is the best; 2 complete without a model; 3 pruned),
    an export, and two folders under exports/ that are not loadable exports."""
    run = write_model_folder(workspace.models_dir / "hand-run", hand_keras, TINY_CLASSES,
                             metrics={"best_val_accuracy": 0.8, "test_accuracy": 0.7})
    ids = upload_trial_run(workspace, run, "t")

    def trial(start, value, **kw):
        return hand_trial(T0, start, start + 5, value=value, history=[epoch_record(1, value)], **kw)

    hand_study(workspace, "hs", [
        trial(0, 0.70, tl_artifacts=ids, tl_metrics={"test_accuracy": 0.66}),
        trial(10, 0.90, tl_artifacts=ids),
        trial(20, 0.50),  # complete, but no model saved
        hand_trial(T0, 30, 35, state=TrialState.PRUNED, tl_artifacts=ids),
    ])
    write_export_folder(workspace.root / "exports" / "hand-export", hand_keras, TINY_CLASSES, val=0.75)
    (workspace.root / "exports" / "no-model").mkdir()
    (workspace.root / "exports" / "no-model" / "model_card.json").write_text("{}")
    write_model_folder(workspace.root / "exports" / "no-card", hand_keras, TINY_CLASSES)
    (workspace.root / "exports" / "edge-only").mkdir()
    (workspace.root / "exports" / "edge-only" / "model.tflite").write_bytes(b"TFL3")
    (workspace.root / "exports" / "edge-only" / "model_card.json").write_text("{}")
    (workspace.root / "exports" / "not-an-export").mkdir()  # a folder of the user's own: no note
    return workspace


def test_an_export_that_is_not_listed_gets_a_note_saying_why(ws):
    """Exports with their model card missing or damaged vanished from the list without a word."""
    (ws.root / "exports" / "bad-card").mkdir()
    for name in ("model.keras", "labels.txt"):
        (ws.root / "exports" / "bad-card" / name).write_bytes((ws.root / "exports" / "hand-export" / name).read_bytes())
    (ws.root / "exports" / "bad-card" / "model_card.json").write_text("{ damaged")
    notes = list_catalog(ws).notes
    about = {n.split("'")[1]: n for n in notes if n.startswith("Export '")}
    # serving formats only (edge-only, no-model) is no fault, and a folder of the user's own is none of ours
    assert sorted(about) == ["bad-card", "no-card"], notes
    assert "model_card.json is missing" in about["no-card"] and "python -m tlcore predict" in about["no-card"]
    assert "cannot be read" in about["bad-card"]


def test_every_kind_is_listed_in_order_with_stable_keys(ws):
    cat = list_catalog(ws)
    assert all(n.startswith("Export '") for n in cat.notes)  # the unlisted export folders (test below)
    assert cat.keys == ["run:hand-run", "trial:hs:1", "trial:hs:0", "export:hand-export"]
    run, best, other, export = cat.entries
    assert run.label == "hand-run · val 0.800" and (run.test_accuracy, run.num_classes) == (0.7, 3)
    assert best.label == "study hs · trial 1 (best) · val 0.900" and best.best and best.path is None
    assert other.label == "study hs · trial 0 · val 0.700" and not other.best and other.test_accuracy == 0.66
    assert (best.dataset, best.backbone, best.method, best.image_size) == ("tiny", "efficientnet_lite0",
                                                                          "fine_tune", 32)
    assert export.label == "export hand-export · val 0.750" and export.num_classes == 3
    assert export.created.startswith("2026-01-02")
    assert list_catalog(ws).keys == cat.keys  # stable between listings


def test_a_trial_is_fetched_only_when_used(ws):
    local = ws.root / "studies" / "local" / "hs" / "trials"
    cat = list_catalog(ws)
    assert not local.exists()  # listing downloads nothing
    folder = model_folder(ws, cat.find("trial:hs:1"))
    assert folder == local / "1" and (folder / "model.keras").is_file()
    assert load_model(folder).class_names == list(TINY_CLASSES)
    assert list_catalog(ws).find("trial:hs:1").path == folder  # fetched: the listing says where


def test_old_links_name_a_run(ws):
    cat = list_catalog(ws)
    assert cat.find("hand-run").key == "run:hand-run"
    assert cat.find("run:hand-run") is cat.find("hand-run")
    assert cat.find("nope") is None and cat.find(None) is None


def test_a_storage_that_cannot_be_opened_is_a_note(ws, hand_keras):
    cat = list_catalog(ws, storage="unknown://somewhere")
    assert cat.keys == ["run:hand-run", "export:hand-export"]
    storage_notes = [n for n in cat.notes if not n.startswith("Export '")]
    assert len(storage_notes) == 1 and "Search trials are not listed" in storage_notes[0]
    assert "Unknown storage URL" in storage_notes[0]
    secret = list_catalog(ws, storage="postgresql://me:hunter2@127.0.0.1:1/db")
    assert secret.notes and "hunter2" not in secret.notes[0]


def test_a_workspace_journal_that_is_a_folder_is_a_note(workspace, hand_keras):
    write_model_folder(workspace.models_dir / "r", hand_keras, TINY_CLASSES)
    (workspace.root / "studies" / "journal.log").mkdir(parents=True)
    cat = list_catalog(workspace)
    assert cat.keys == ["run:r"] and "folder, not a journal file" in cat.notes[0]


def test_no_study_yet_makes_no_journal(workspace):
    cat = list_catalog(workspace)
    assert cat.entries == [] and cat.notes == []
    assert not (workspace.root / "studies" / "journal.log").exists()


def test_keys_and_resolve(ws):
    assert parse_key(trial_key("hs", 3)) == ("trial", "hs", 3)
    assert parse_key(run_key("a:b")) == ("run", "a:b", None)
    for bad in ("nope", "trial:hs", "trial:hs:x", "model:x", "run:"):
        with pytest.raises(ConfigError, match="Not a model key"):
            parse_key(bad)
    assert resolve(ws, "run:hand-run") == ws.root / "models" / "hand-run"
    assert resolve(ws, "hand-run") == ws.root / "models" / "hand-run"  # a run name, as before
    assert resolve(ws, "export:hand-export") == ws.root / "exports" / "hand-export"
    assert resolve(ws, "trial:hs:0") == ws.root / "studies" / "local" / "hs" / "trials" / "0"
    with pytest.raises(NotFoundError, match="models list"):
        resolve(ws, "export:nothing-there")
    # an export of edge formats only said "No export of that name", though it is there: loading it now
    # says what it holds, as loading the folder's path does
    with pytest.raises(NotFoundError, match="has no model.keras") as info:
        load_model(resolve(ws, "export:edge-only"))
    assert "model.tflite" in info.value.fix and "keras format too" in info.value.fix
    with pytest.raises(NotFoundError, match="has no model.keras") as info:
        load_model(resolve(ws, "export:no-model"))
    assert "models list" in info.value.fix
    with pytest.raises(NotFoundError, match="no trial 7"):
        resolve(ws, "trial:hs:7")
    assert export_name("trial:hs:0", ws.root) == "hs-trial-0"
    assert export_name("x", ws.root / "studies" / "local" / "hs" / "trials" / "4") == "hs-trial-4"
    assert export_name("hand-run", ws.root / "models" / "hand-run") == "hand-run"


def test_an_exports_time_is_local_and_without_a_zone_as_runs_and_trials_give_theirs(monkeypatch):
    """`models list` printed exports' times as 2026-12-05 00:05:48+00:00 beside runs' local times."""
    import time

    from tlcore.catalog import _local_time

    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        assert _local_time("2026-01-05T09:00:00+00:00") == "2026-01-05T10:00:00"
        assert _local_time("2026-01-05T09:00:00") == "2026-01-05T09:00:00"  # no zone: as it is
        assert _local_time(None) == "" and _local_time("yesterday") == "yesterday"
    finally:
        monkeypatch.undo()
        time.tzset()
