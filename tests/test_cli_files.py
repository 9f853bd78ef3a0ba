"""The files a user names on the command line: a missing one and a binary one get one line each."""

from __future__ import annotations

import pytest

from tlcore.cli import main

COMMANDS = {
    "train": ["train", "--spec", "{f}"],
    "search-create": ["search", "create", "--spec", "{f}"],
    "augment-save": ["augment", "save", "flips", "--from-file", "{f}"],
    "audit": ["datasets", "audit", "demo", "--spec", "{f}"],
    "overrides-import": ["datasets", "overrides", "demo", "--import", "{f}"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["binary", "missing"])
def test_a_file_that_cannot_be_read_as_text_is_one_line_not_a_traceback(workspace, tmp_path, capsys, command, kind):
    f = tmp_path / "spec.yaml"
    if kind == "binary":
        f.write_bytes(b"\x89PNG\r\n\x1a\n\xbb\xff" + bytes(range(256)))
    code = main([a.replace("{f}", str(f)) for a in COMMANDS[command]])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    if kind == "binary":
        assert "is not UTF-8 text" in err and "byte 0: b'\\x89'" in err
    else:
        assert "Cannot read the" in err and "No such file or directory" in err
