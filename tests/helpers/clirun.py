"""Running the CLI in-process in a test, and checking that a refusal is one clear error line."""

from __future__ import annotations

from pathlib import Path

from tlcore.cli import main


def cli(capsys, root: Path, *argv) -> tuple[int, str, str]:
    """``python -m tlcore --workspace ROOT ARGV...`` in-process: (exit status, stdout, stderr)."""
    code = main(["--workspace", str(root), *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(result: tuple[int, str, str], *words: str, output: bool = False) -> str:
    """Exit status 2, one ``error: ...`` line holding ``words``, no traceback, and nothing on stdout
    unless ``output`` (a command that printed some progress before it was refused); returns stderr."""
    code, out, err = result
    assert code == 2, (out, err)
    assert (output or out == "") and "Traceback" not in err, (out, err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    for word in words:
        assert word in err, (word, err)
    return err
