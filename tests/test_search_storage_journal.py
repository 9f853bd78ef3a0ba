"""A damaged line in the study journal is a WorkspaceError naming the file, the line and the way out.

Optuna's reader raises a bare ``JSONDecodeError`` / ``UnicodeDecodeError`` for a journal line
that is not a JSON record; the Search and Results pages catch only ``TLCoreError``, and
``search list`` printed a traceback. A worker killed mid-write leaves a cut last line (Optuna
ignores it), and the next append is glued onto it: that is how such damage appears without
anyone editing the file. The journal is never modified by tlcore.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.cli import main
from tlcore.errors import WorkspaceError
from tlcore.search import create_study, list_studies
from tlcore.search import storage as storage_mod
from tlcore.search.storage import default_journal_path, open_storage


@pytest.fixture
def journal(workspace, monkeypatch) -> Path:
    """The workspace journal of two fresh studies (8 lines); the process's storage cache emptied."""
    monkeypatch.setattr(storage_mod, "_OPEN", {})
    add_tiny_dataset(workspace)
    create_study(workspace, tiny_spec("s1"))
    create_study(workspace, tiny_spec("s2"))
    storage_mod._OPEN.clear()  # open it afresh from the file, as another process would
    path = default_journal_path(workspace)
    assert len(_lines(path)) == 8
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _insert(path: Path, at: int, line: bytes) -> bytes:
    lines = _lines(path)
    lines.insert(at, line)
    data = b"".join(lines)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("bad", [b"this is not json\n", b"\xff\xfe garbage\n", b"\x80\x81\x82\n", b"[1, 2]\n", b"\n"],
                         ids=["text", "utf16-bom", "not-utf8", "json-not-a-record", "blank"])
def test_a_damaged_middle_line_is_a_workspace_error_naming_it(workspace, journal, bad):
    data = _insert(journal, 2, bad)
    with pytest.raises(WorkspaceError) as ei:
        open_storage(workspace)
    err = ei.value
    assert err.received == str(journal)
    assert "The study journal is damaged at line 3" in err.message
    assert "copy journal.log aside" in err.fix and "delete line 3" in err.fix
    assert "restore the journal from a backup" in err.fix
    assert journal.read_bytes() == data  # untouched
    with pytest.raises(WorkspaceError, match="line 3"):
        list_studies(workspace)  # nothing half-opened was cached


def test_several_damaged_lines_are_listed(workspace, journal):
    _insert(journal, 2, b"junk one\n")
    _insert(journal, 5, b"junk two\n")
    with pytest.raises(WorkspaceError, match=r"damaged at lines 3, 6:"):
        open_storage(workspace)


def test_a_cut_record_with_the_next_glued_on_says_what_to_delete(workspace, journal):
    lines = _lines(journal)
    cut = lines[2][:40]
    lines[2] = cut + lines[3]  # a worker killed mid-write; the next append lands on its line
    del lines[3]
    journal.write_bytes(b"".join(lines))
    with pytest.raises(WorkspaceError) as ei:
        open_storage(workspace)
    assert "damaged at line 3: a record cut short" in ei.value.message
    assert "(line 3: column 41)" in ei.value.fix
    assert "Only the unfinished record is lost" in ei.value.fix
    # Following the advice opens it again, with both studies.
    lines[2] = lines[2][40:]
    journal.write_bytes(b"".join(lines))
    assert sorted(s.name for s in list_studies(workspace)) == ["s1", "s2"]


def test_a_cut_last_line_still_opens(workspace, journal):
    data = journal.read_bytes()[:-30]  # a worker killed while appending its last record
    journal.write_bytes(data)
    assert sorted(s.name for s in list_studies(workspace)) == ["s1", "s2"]
    assert journal.read_bytes() == data


def test_the_next_write_sets_a_cut_last_record_aside_instead_of_gluing_onto_it(workspace, journal):
    """Appending after a cut-off last record glued the new record to it: the new study was lost, and
    every later command failed on the damaged line until the file was edited by hand."""
    whole = journal.read_bytes()
    cut = b'{"op_code":5,"worker_id":"x","trial_id":3,"sta'  # a writer killed mid-record
    journal.write_bytes(whole + cut)
    with pytest.warns(RuntimeWarning, match="ended with a record cut short"):
        create_study(workspace, tiny_spec("s3"))
    storage_mod._OPEN.clear()  # and read afresh, as another process would
    assert sorted(s.name for s in list_studies(workspace)) == ["s1", "s2", "s3"]
    data = journal.read_bytes()
    assert data.startswith(whole) and data.endswith(b"\n") and cut not in data
    [aside] = journal.parent.glob("journal.log.cut-*")
    assert aside.read_bytes() == cut  # kept, not thrown away


def test_a_journal_that_is_only_a_cut_record_is_set_aside_too(tmp_path):
    path = tmp_path / "j.log"
    path.write_bytes(b'{"op_code":0,"wor')
    aside = storage_mod.set_aside_cut_tail(path)
    assert path.read_bytes() == b"" and aside.read_bytes() == b'{"op_code":0,"wor'
    path.write_bytes(b'{"op_code":0}\n')
    assert storage_mod.set_aside_cut_tail(path) is None and path.read_bytes() == b'{"op_code":0}\n'


def test_damage_after_the_storage_was_opened_is_a_workspace_error_too(workspace, journal):
    assert len(list_studies(workspace)) == 2  # opened and cached, as a page's process keeps it
    with journal.open("ab") as fh:  # a cut line, then another worker's append glued to it, then one more
        fh.write(b'{"op_code":4,"worker_id":"x')
    with journal.open("ab") as fh:
        fh.write(_lines(journal)[-2] + _lines(journal)[1])
    with pytest.raises(WorkspaceError, match="damaged at line 9"):
        list_studies(workspace)


def test_search_list_prints_the_error_without_a_traceback(workspace, journal, capsys):
    _insert(journal, 2, b"\xff\xfe garbage\n")
    code = main(["--workspace", str(workspace.root), "search", "list"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: The study journal is damaged at line 3")
    assert str(journal) in err and "Traceback" not in err
