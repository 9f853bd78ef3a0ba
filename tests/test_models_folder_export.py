"""``models list`` / the pages' run listing, for an export folder a user saved among the runs.

``python -m tlcore export RUN --out <workspace>/models/NAME`` is an easy mistake: the export
has ``model.keras``, ``labels.txt`` and ``model_card.json`` but no ``spec.yaml``. The listing
must not tell the user to delete it (it is a good export), but say what it is and where it
belongs (``<workspace>/exports/``, where Predict and ``models list`` list exports).
"""

from __future__ import annotations

import json

from tlcore.predict import scan_models
from tlcore.workspace import Workspace


def _export_among_runs(ws: Workspace, name: str = "my-export"):
    folder = ws.root / "models" / name
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"PK\x03\x04 stand-in")  # the listing never loads it
    (folder / "labels.txt").write_text("cat\ndog\n", encoding="utf-8")
    (folder / "model_card.json").write_text(json.dumps({"name": name, "formats": ["keras"]}), encoding="utf-8")
    return folder


def test_an_export_saved_among_the_runs_is_named_an_export_not_to_delete(tmp_path):
    ws = Workspace(tmp_path / "ws")
    folder = _export_among_runs(ws)
    runs, notes = scan_models(ws)
    assert runs == []
    assert len(notes) == 1
    note = notes[0]
    assert "delete" not in note
    assert "export" in note and str(ws.exports_dir) in note and folder.name in note


def test_a_run_missing_its_spec_still_gets_the_restore_advice(tmp_path):
    ws = Workspace(tmp_path / "ws")
    folder = ws.root / "models" / "half-copied"
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"PK\x03\x04 stand-in")
    (folder / "labels.txt").write_text("cat\ndog\n", encoding="utf-8")
    _, notes = scan_models(ws)
    assert len(notes) == 1 and "spec.yaml is missing" in notes[0] and "Restore it" in notes[0]
