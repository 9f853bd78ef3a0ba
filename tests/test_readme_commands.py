"""README.md's command lines, parsed by the real CLI parser: flags and values that drift fail here.

Nothing runs: ``tlcore.cli.main`` parses each command with ``build_parser()``'s parser, whose
handlers are swapped for one that only records the parsed arguments (no TensorFlow, no
workspace, no training). What counts as a command, and how the README's notation is read:

Where commands are found
    * every line of a fenced code block whose first word (after ``VAR=value`` prefixes such as
      ``KERAS_BACKEND=jax``) is ``python -m tlcore`` (any ``.../python`` or ``python3``) or the
      installed entry point ``tlcore`` / ``.../bin/tlcore``; lines ending in ``\\`` are joined
      with the next, a ``# comment`` is dropped, a trailing ``&`` (run in the background) too;
    * every inline code span in the prose of that form (a span may wrap over lines), and every
      span that starts with a command group and one of its sub-commands (``search best``,
      ``datasets restore-demo``): prose names the command it talks about. A bare ``tlcore`` span
      is the package's name, not a command. Prose may name a command without its required
      arguments (``python -m tlcore worker``), so spans are parsed with every argument made
      optional; unknown commands, unknown flags, wrong value counts and bad values still fail.
    * Any other fenced line that still runs ``-m tlcore`` or ``bin/tlcore`` (behind ``cd x &&``,
      in a pipe, ...) fails unless ``EXPLICIT`` says what to check instead, and why.

The notation (tokens come from ``shlex``)
    * ``[ ... ]`` is optional, ``[A | B]`` a choice of whole alternatives; groups nest
      (``[--list | --show [ID]]``). A leading ``[`` or trailing ``]`` of a token is a bracket.
    * A bare ``|`` outside brackets chooses between the single items on either side of it: a
      word (``exclude | keep NAME``) or a flag with its values (``--folder DIR | --zip FILE``).
    * ``a|b|c`` within one token is a choice of values (``--from-audit label_issues|quality``).
    * Every combination of these choices is parsed (at most ``MAX_VARIANTS`` per line).
    * ``X…`` means one or more: it becomes ``X X``; ``a,b,…`` becomes ``a,b``; a lone ``…`` (the
      rest left out) is dropped.
    * ``COMMAND``, the parser's own name for a sub-command, stands for each of the sub-commands
      at that place (``python -m tlcore COMMAND --help``).
    * Other placeholders (``NAME``, ``MODEL``, ``RUN_NAME_OR_PATH``, ``photo1.jpg``) stay literal
      strings: argparse checks only their place and count. Where argparse converts a value
      (``--workers N``: ``type=int``) an all-capitals placeholder stands for a valid value.
    * ``--help`` prints the help and exits 0: that is a pass.
    * Flags must be written in full: argparse would take ``--head-epoch`` for ``--head-epochs``
      (and stop doing so the day another flag starts the same way).

Values argparse does not check, the project's own functions do: ``export --format`` with
``tlcore.export.check_formats``, ``scout --backbones`` and ``train --backbone`` with
``tlcore.backbones.get``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

import tlcore.cli as cli

README = Path(__file__).resolve().parent.parent / "README.md"

# Lines the rules above cannot read as one command: the README line (its command text, comment
# dropped, words joined by one space) -> (the commands to parse instead, after the entry point;
# why). Kept short: prefer a rule. A key that is no longer in the README fails
# test_every_explicit_entry_is_still_in_the_readme.
EXPLICIT: dict[str, tuple[tuple[str, ...], str]] = {
    "python -m tlcore augment list | show NAME | delete NAME": (
        ("augment list", "augment show NAME", "augment delete NAME"),
        "three sub-commands on one line; the one-item rule for a bare | would read `list | show`, `NAME | delete`",
    ),
}

MAX_VARIANTS = 256
ELLIPSIS = "…"
SUBCOMMAND_PLACEHOLDER = "COMMAND"  # the metavar build_parser() and every group give their sub-commands
_PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*")
_ENV_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"(?:\S*/)?python3?(?:\.\d+)?")
_RUNS_TLCORE = re.compile(r"-m\s+tlcore\b|bin/tlcore\b")
_FENCE = re.compile(r"\s*(```|~~~)")


@dataclass(frozen=True)
class Command:
    line: int  # where it starts in the README (1-based)
    text: str  # as written: continuations joined, comment dropped, words joined by one space
    argv: tuple[str, ...] | None  # what follows the entry point; None: nothing the rules can read
    inline: bool  # an inline code span in prose, not a line of a code block


# --------------------------------------------------------------------------- reading the README
def _strip_comment(line: str) -> str:
    """``line`` without a shell comment: ``#`` at the start of a word, outside quotes."""
    quote, i = None, 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                i += 1
        elif ch in "'\"":
            quote = ch
        elif ch == "\\":
            i += 1
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
        i += 1
    return line.rstrip()


def _entry_argv(words: list[str], *, inline: bool, groups: dict[str, set[str]]) -> tuple[str, ...] | None:
    """The arguments after the entry point, or None when ``words`` is not a tlcore command."""
    while words and _ENV_PREFIX.match(words[0]):  # KERAS_BACKEND=jax python -m tlcore ...
        words = words[1:]
    if words[-1:] == ["&"]:
        words = words[:-1]
    if len(words) >= 3 and _PYTHON.fullmatch(words[0]) and words[1:3] == ["-m", "tlcore"]:
        return tuple(words[3:])
    if words and (words[0] == "tlcore" or words[0].endswith("/bin/tlcore")):
        if inline and len(words) == 1:
            return None  # `tlcore`: the package
        return tuple(words[1:])
    if inline and len(words) >= 2 and words[1] in groups.get(words[0], ()):
        return tuple(words)  # `search best`, `datasets restore-demo`
    return None


def _fenced_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, text) of every logical line inside code fences; ``\\`` continuations joined."""
    out: list[tuple[int, str]] = []
    fenced, pending, start = False, "", 0
    for n, line in enumerate(lines, 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            continue
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def _inline_spans(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, text) of every inline code span outside code fences, per paragraph."""
    out: list[tuple[int, str]] = []
    prose, fenced = [], False
    for line in lines:
        fence = bool(_FENCE.match(line))
        prose.append("" if fenced or fence else line)
        fenced ^= fence
    para_start = 0
    for n, line in enumerate([*prose, ""]):
        if line.strip():
            continue
        text = "\n".join(prose[para_start:n])
        for m in re.finditer(r"`([^`]+)`", text):
            out.append((para_start + 1 + text.count("\n", 0, m.start()), " ".join(m.group(1).split())))
        para_start = n + 1
    return out


def readme_commands(text: str) -> list[Command]:
    """Every command of a README text (see the module docstring), in line order."""
    groups = {name: set(_subparsers(p).choices) for name, p in _subparsers(_parser(False)).choices.items()
              if _subparsers(p) is not None}
    lines = text.splitlines()
    found: list[Command] = []
    for inline, items in ((False, _fenced_lines(lines)), (True, _inline_spans(lines))):
        for n, raw in items:
            code = _strip_comment(raw)
            try:
                words = shlex.split(code)
            except ValueError:  # unbalanced quotes: not something a shell would run either
                words = []
            argv = _entry_argv(words, inline=inline, groups=groups) if words else None
            text_ = " ".join(words) if words else code.strip()
            if argv is not None or (_RUNS_TLCORE.search(code) and not inline) or text_ in EXPLICIT:
                found.append(Command(n, text_, argv, inline))
    return sorted(found, key=lambda c: c.line)


# --------------------------------------------------------------------------- the notation
@dataclass(frozen=True)
class _Word:
    alternatives: tuple[str, ...]


@dataclass(frozen=True)
class _Choice:  # [A | B] (optional) or A | B (one of them)
    alternatives: tuple[tuple[object, ...], ...]
    optional: bool


_BAR = object()


def _split_brackets(words: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for w in words:
        lead = len(w) - len(w.lstrip("["))
        trail = len(w[lead:]) - len(w[lead:].rstrip("]"))
        core = w[lead:len(w) - trail]
        out += ["["] * lead + ([core] if core else []) + ["]"] * trail
    return out


def _ellipsis(word: str) -> list[str]:
    if word == ELLIPSIS:
        return []
    if word.endswith("," + ELLIPSIS):
        return [word[:-2]]
    if word.endswith(ELLIPSIS):
        return [word[:-1]] * 2
    return [word]


def _parse_items(tokens: list[str], i: int, stop: frozenset[str]) -> tuple[list[object], int]:
    """Items from ``tokens[i]`` up to a token in ``stop``; a ``|`` outside brackets becomes ``_BAR``."""
    items: list[object] = []
    while i < len(tokens) and tokens[i] not in stop:
        t = tokens[i]
        i += 1
        if t == "]":
            raise ValueError("a ] without its [")
        if t != "[":
            items.append(_BAR if t == "|" else _Word(tuple(t.split("|")) if "|" in t else (t,)))
            continue
        alternatives = []
        while True:  # [A | B | ...]: whole alternatives
            seq, i = _parse_items(tokens, i, frozenset("|]"))
            alternatives.append(tuple(seq))
            if i >= len(tokens):
                raise ValueError("a [ without its ]")
            i += 1
            if tokens[i - 1] == "]":
                break
        items.append(_Choice(tuple(alternatives), optional=True))
    return items, i


def _is_flag(item: object) -> bool:
    return isinstance(item, _Word) and item.alternatives[0].startswith("-")


def _top_level_choices(items: list[object]) -> list[object]:
    """Read ``A | B`` at the top level: a unit is a flag with the words after it, or one item."""
    units: list[list[object]] = []
    for item in items:
        if units and units[-1] and _is_flag(units[-1][0]) and isinstance(item, _Word) and not _is_flag(item):
            units[-1].append(item)
        else:
            units.append([item])
    out: list[object] = []
    i = 0
    while i < len(units):
        if units[i] == [_BAR]:
            raise ValueError("a | without an item on each side")
        chain = [tuple(units[i])]
        while i + 2 < len(units) and units[i + 1] == [_BAR] and units[i + 2] != [_BAR]:
            chain.append(tuple(units[i + 2]))
            i += 2
        if i + 1 < len(units) and units[i + 1] == [_BAR]:
            raise ValueError("a | without an item on each side")
        out += list(chain[0]) if len(chain) == 1 else [_Choice(tuple(chain), optional=False)]
        i += 1
    return out


def _expand(items: tuple[object, ...] | list[object]) -> list[list[str]]:
    results: list[list[str]] = [[]]
    for item in items:
        if isinstance(item, _Word):
            choices = [[w] for w in item.alternatives]
        else:
            assert isinstance(item, _Choice)
            choices = ([[]] if item.optional else []) + [v for alt in item.alternatives for v in _expand(alt)]
        results = [r + c for r in results for c in choices]
        if len(results) > MAX_VARIANTS:
            raise ValueError(f"more than {MAX_VARIANTS} combinations of its optional parts")
    return results


def variants(argv: tuple[str, ...]) -> list[list[str]]:
    """Every concrete argument list the README's notation allows for ``argv``."""
    tokens = [t for w in _split_brackets(argv) for t in _ellipsis(w)]
    items, _ = _parse_items(tokens, 0, frozenset())
    out: list[list[str]] = []
    for v in _expand(_top_level_choices(items)):
        for w in _fill_subcommands(v):
            if w not in out:
                out.append(w)
    return out


def _fill_subcommands(argv: list[str]) -> list[list[str]]:
    if SUBCOMMAND_PLACEHOLDER not in argv:
        return [argv]
    i = argv.index(SUBCOMMAND_PLACEHOLDER)
    parser = _parser(False)
    for w in argv[:i]:
        sub = _subparsers(parser)
        if sub is not None and w in sub.choices:
            parser = sub.choices[w]
    sub = _subparsers(parser)
    names = list(sub.choices) if sub is not None else [SUBCOMMAND_PLACEHOLDER]
    return [v for name in names for v in _fill_subcommands([*argv[:i], name, *argv[i + 1:]])]


# --------------------------------------------------------------------------- the parser
_RECORDED: list[argparse.Namespace] = []


def _record(args: argparse.Namespace) -> int:
    _RECORDED.append(args)
    return 0


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _all_parsers(parser: argparse.ArgumentParser):
    yield parser
    sub = _subparsers(parser)
    for child in (sub.choices.values() if sub is not None else ()):
        yield from _all_parsers(child)


def _placeholder_stands_for_a_value(convert: Callable[[str], object]) -> Callable[[str], object]:
    def convert_or_sample(text: str) -> object:
        return convert("1") if _PLACEHOLDER.fullmatch(text) else convert(text)

    convert_or_sample.__name__ = getattr(convert, "__name__", "value")  # argparse names it in "invalid int value"
    return convert_or_sample


@functools.cache
def _parser(lenient: bool) -> argparse.ArgumentParser:
    """build_parser()'s parser with every handler recording instead of running; ``lenient``:
    nothing required (prose names commands without their required arguments)."""
    parser = cli.build_parser()
    for p in _all_parsers(parser):
        p.allow_abbrev = False  # `--head-epoch` for `--head-epochs`: argparse would guess, the README should not
        if "handler" in p._defaults:
            p.set_defaults(handler=_record)
        for action in p._actions:
            if callable(action.type):
                action.type = _placeholder_stands_for_a_value(action.type)
            if lenient:
                action.required = False
    return parser


def _check_values(args: argparse.Namespace) -> str | None:
    """The project's own checks of values argparse takes as plain strings."""
    from tlcore import backbones
    from tlcore.errors import TLCoreError
    from tlcore.export import check_formats

    group = getattr(args, "group", None)
    try:
        if group == "export" and args.format and not _PLACEHOLDER.fullmatch(args.format):
            check_formats(args.format)
        names = []
        if group == "scout" and args.backbones:
            names = [b.strip() for b in args.backbones.split(",") if b.strip()]
        if group == "train" and args.backbone:
            names = [args.backbone]
        for name in names:
            if not _PLACEHOLDER.fullmatch(name):
                backbones.get(name)
    except TLCoreError as exc:
        return str(exc)
    return None


def parse_error(argv: list[str], *, lenient: bool = False) -> str | None:
    """None if ``tlcore.cli.main(argv)`` parses ``argv`` (handlers recorded, not run), else why not."""
    parser = _parser(lenient)
    _RECORDED.clear()
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(cli, "build_parser", lambda prog="python -m tlcore": parser), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: 2 on an error, 0 after --help
            code = exc.code
    if code == 0 and _RECORDED:
        return _check_values(_RECORDED[-1])
    if code == 0 or (lenient and code == 2 and not err.getvalue()):  # help printed; `search`: a group named
        return None
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {code}"


def problems(cmd: Command, source: str = "README.md") -> list[str]:
    """What is wrong with one README command: one line per failing variant, naming the README line."""
    where = f"{source}:{cmd.line}: `{cmd.text}`"
    if cmd.text in EXPLICIT:
        runs = [shlex.split(a) for a in EXPLICIT[cmd.text][0]]
    elif cmd.argv is None:
        return [f"{where}: runs tlcore in a way these rules cannot read as one command; write it as one, or add "
                "it to EXPLICIT with the commands to check and why"]
    else:
        try:
            runs = variants(cmd.argv)
        except ValueError as exc:
            return [f"{where}: cannot read its notation: {exc}"]
    out = []
    for argv in runs:
        error = parse_error(argv, lenient=cmd.inline)
        if error:
            shown = "" if argv == list(cmd.argv or ()) else f" (as: {shlex.join(argv)})"
            out.append(f"{where}{shown}: {error}")
    return out


# --------------------------------------------------------------------------- the tests
COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def _ids(commands: list[Command]) -> list[str]:
    seen: dict[int, int] = {}
    ids = []
    for c in commands:
        seen[c.line] = seen.get(c.line, 0) + 1
        ids.append(f"line{c.line}" + (f"-{seen[c.line]}" if seen[c.line] > 1 else ""))
    return ids


@pytest.mark.parametrize("cmd", COMMANDS, ids=_ids(COMMANDS))
def test_readme_command_parses(cmd):
    found = problems(cmd)
    assert not found, "\n".join(found)


def test_the_readme_has_the_commands_it_is_known_for():
    """The extraction itself: a changed fence or entry point must not leave nothing to check."""
    fenced = [c for c in COMMANDS if not c.inline]
    assert len(fenced) >= 50, [c.text for c in fenced]
    assert len(COMMANDS) - len(fenced) >= 30
    texts = {c.text for c in COMMANDS}
    assert "python -m tlcore export trial:STUDY:7 --format keras" in texts
    assert "~/tlcore-env/bin/tlcore app" in texts
    assert "KERAS_BACKEND=jax .venv/bin/python -m tlcore worker --study NAME" in texts


def test_every_explicit_entry_is_still_in_the_readme():
    texts = {c.text for c in COMMANDS}
    assert not [k for k in EXPLICIT if k not in texts]


def test_the_notation():
    v = variants(tuple(shlex.split("datasets overrides NAME [--undo RELPATH… | --undo-last | --export FILE]")))
    assert v == [["datasets", "overrides", "NAME"], ["datasets", "overrides", "NAME", "--undo", "RELPATH", "RELPATH"],
                 ["datasets", "overrides", "NAME", "--undo-last"], ["datasets", "overrides", "NAME", "--export", "FILE"]]
    v = variants(tuple(shlex.split("predict MODEL --folder DIR | --zip FILE [--tta]")))
    assert v == [["predict", "MODEL", "--folder", "DIR"], ["predict", "MODEL", "--folder", "DIR", "--tta"],
                 ["predict", "MODEL", "--zip", "FILE"], ["predict", "MODEL", "--zip", "FILE", "--tta"]]
    assert variants(("audit", "N", "[--list", "|", "--show", "[ID]]")) == [
        ["audit", "N"], ["audit", "N", "--list"], ["audit", "N", "--show"], ["audit", "N", "--show", "ID"]]
    assert variants(("x", "exclude", "|", "keep", "N", "[--a", "q|r]")) == [
        ["x", "exclude", "N"], ["x", "exclude", "N", "--a", "q"], ["x", "exclude", "N", "--a", "r"],
        ["x", "keep", "N"], ["x", "keep", "N", "--a", "q"], ["x", "keep", "N", "--a", "r"]]
    assert variants(("import-idx", "--classes", "a,b,…", "…")) == [["import-idx", "--classes", "a,b"]]
    assert ["search", "--help"] in variants(("COMMAND", "--help"))


# A README with a known-bad command on each line: the checker must catch every one, by line.
BAD_README = """\
Prose with `python -m tlcore search status --studdy NAME` and `search run --workers many`.

```bash
python -m tlcore export RUN --formats keras              # a renamed flag
python -m tlcore train --data demo --epochs five         # a value of the wrong type
python -m tlcore export RUN --format keras,tflite_int4   # a format tlcore.export does not know
python -m tlcore scout --data demo --backbones efficientnet_lite9
python -m tlcore serve --port 8000                       # no such command
python -m tlcore search run --workers 2                  # --study is required
python -m tlcore datasets overrides NAME [--undo RELPATH… | --undo-latest]
python -m tlcore predict MODEL --folder DIR | --zip FILE [--top-k]
python -m tlcore train --method fine_tune|fine_tuning
python -m tlcore train --data demo --head-epoch 3        # an abbreviated flag
cd /tmp && python -m tlcore datasets list
```
"""
BAD_EXPECTED = [  # (line, what the report says)
    (1, ["unrecognized arguments: --studdy NAME"]),
    (1, ["invalid int value: 'many'"]),
    (4, ["unrecognized arguments: --formats keras"]),
    (5, ["invalid int value: 'five'"]),
    (6, ["Unknown export format."]),
    (7, ["Unknown backbone."]),
    (8, ["invalid choice: 'serve'"]),
    (9, ["the following arguments are required: --study"]),
    (10, ["(as: datasets overrides NAME --undo-latest): ", "unrecognized arguments: --undo-latest"]),
    (11, ["(as: predict MODEL --folder DIR --top-k)", "(as: predict MODEL --zip FILE --top-k)",
          "argument --top-k: expected one argument"]),
    (12, ["(as: train --method fine_tuning)", "invalid choice: 'fine_tuning'"]),
    (13, ["unrecognized arguments: --head-epoch 3"]),
    (14, ["runs tlcore in a way these rules cannot read as one command"]),
]


def test_the_checker_catches_bad_commands():
    commands = readme_commands(BAD_README)
    assert [c.line for c in commands] == [line for line, _ in BAD_EXPECTED]
    for cmd, (line, fragments) in zip(commands, BAD_EXPECTED):
        found = "\n".join(problems(cmd, source="BAD.md"))
        assert found.startswith(f"BAD.md:{line}: `"), (cmd, found)
        for fragment in fragments:
            assert fragment in found, (cmd, fragment, found)
    good = readme_commands("```bash\npython -m tlcore export RUN --format keras,tflite_int8\n```\n")
    assert [problems(c) for c in good] == [[]]


def test_the_checker_parses_without_running_anything(tmp_path, monkeypatch):
    """The handlers only record: a command that would train or delete is parsed, nothing more."""
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path / "ws"))
    assert parse_error(["train", "--data", "demo", "--epochs", "1"]) is None
    assert parse_error(["datasets", "remove", "demo", "--delete-files", "--yes"]) is None
    assert [a.handler for a in _RECORDED] == [_record]
    assert not (tmp_path / "ws").exists()
