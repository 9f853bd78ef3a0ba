"""Text a user hands over (files named on the command line, uploads): a missing or binary file gets one line."""

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


def test_user_text_drops_a_byte_order_mark_and_names_the_first_bad_byte():
    from tlcore._usertext import decode_text
    from tlcore.errors import ConfigError

    assert decode_text(b"\xef\xbb\xbfname: x\n", "the spec file", "fix") == "name: x\n"  # as spreadsheets save it
    with pytest.raises(ConfigError) as info:
        decode_text("name: caf\xe9\n".encode("latin-1"), "the spec file", "Save it as UTF-8.")
    assert str(info.value) == "The spec file is not UTF-8 text. Received: byte 9: b'\\xe9'. Save it as UTF-8."


def test_overrides_import_reads_standard_input(workspace, capsys, monkeypatch):
    import io

    assert main(["datasets", "overrides", "demo", "--export", "-"]) == 0
    exported = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf" + exported.encode())))
    assert main(["datasets", "overrides", "demo", "--import", "-"]) == 0
    assert "Imported 0 decisions into 'demo'" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe")))
    assert main(["datasets", "overrides", "demo", "--import", "-"]) == 2
    assert "The CSV to import (-) is not UTF-8 text." in capsys.readouterr().err



@pytest.mark.parametrize(("n", "noun", "words"), [(0, "image", "0 images"), (1, "image", "1 image"),
                                                  (2, "image file", "2 image files")])
def test_counted_is_plural_unless_one(n, noun, words):
    from tlcore._usertext import counted

    assert counted(n, noun) == words


def test_ctrl_c_while_the_libraries_load_ends_quietly():
    """Ctrl-C in the first half second of any command (pandas, numpy loading) printed a traceback."""
    import subprocess
    import sys

    stub = ("import builtins, runpy, sys\n"
            "real = builtins.__import__\n"
            "def imp(name, *a, **k):\n"
            "    if name == 'pandas':\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = imp\n"
            "sys.argv = ['tlcore', 'datasets', 'list']\n"
            "runpy.run_module('tlcore', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", stub], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "interrupted", proc.stderr
