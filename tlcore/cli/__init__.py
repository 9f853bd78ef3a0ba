"""``python -m tlcore <group> <command> ...``: everything the pages can do, for servers.

``main(argv)`` parses and dispatches (``tlcore/__main__.py`` calls it);
``build_parser()`` builds the whole parser. The global option ``--workspace DIR``
comes before the command (default ``$TLCORE_HOME`` or ``./workspace``, see
``tlcore.workspace``). Command groups, one module each, in ``--help`` order:

- ``_datasets``  ``datasets inspect | add | list | rescan | remove | import-idx |
  import-fashion-mnist | restore-demo | allow-root`` (``tlcore.datasets``)
- ``_audit``     ``datasets audit | relabel | exclude | keep | overrides`` (``tlcore.audit``,
  the override manifest), registered into the ``datasets`` group
- ``_augment``   ``augment list | show | save | delete | preview | catalogue``
  (``tlcore.augment``)
- ``_train``     ``train``, ``export``, ``models list | evaluate``
  (``tlcore.trainer``, ``tlcore.predict``, ``tlcore.export``, ``tlcore.catalog``)
- ``_predict``   ``predict`` (images, ``--folder``, ``--zip``; ``tlcore.batch_predict``) and
  what ``models list`` prints
- ``_scout``     ``scout`` (``tlcore.scout``)
- ``_search``    ``search ...`` and ``worker`` (``tlcore.search``)
- ``_app``       ``app``: the dashboard (``streamlit run``) with the project's settings
- ``_progress``  the stderr progress bar they share
- ``_dataset_arg`` the dataset a command names: a registered name, a folder, the built-in demo
- ``_export``    the table of checks ``export`` prints, its warnings in red (``tlcore.export``)

Each group module has a ``register(subparsers)`` function and imports most library
modules inside its handlers (Keras only when a command needs it). A handler takes
the parsed arguments and returns an exit status. Any ``TLCoreError``
becomes a one-line ``error: ...`` on stderr and exit status 2, never a traceback.
A command whose parser sets an ``extra_args`` default receives the arguments it
does not know there (``app`` passes them to Streamlit); for every other command
they are an error, as usual.

The installed console script ``tlcore`` (pyproject.toml) is ``console_main``: the
same as ``python -m tlcore``, with ``tlcore`` in the usage line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from tlcore import __version__
from tlcore.errors import TLCoreError
from tlcore.workspace import Workspace

__all__ = ["main", "build_parser", "console_main"]

# Command groups, in the order `--help` lists them.
_GROUPS = ("datasets", "augment", "train", "predict", "scout", "search", "app")


def build_parser(prog: str = "python -m tlcore") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Transfer-learning workbench: datasets, augmentations, training and search from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"tlcore {__version__}")
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        default=None,
        help="workspace folder (default: $TLCORE_HOME or ./workspace)",
    )
    sub = parser.add_subparsers(dest="group", metavar="COMMAND")
    for name in _GROUPS:
        importlib.import_module(f"tlcore.cli._{name}").register(sub)
    return parser


def workspace_from(args: argparse.Namespace) -> Workspace:
    return Workspace(args.workspace)


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m tlcore") -> int:
    parser = build_parser(prog)
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "images", None), list) and not any(e.startswith("-") for e in extra):
        args.images += extra  # `predict MODEL --tta A.jpg B.jpg`: images after an option are images too
        extra = []
    if extra:
        if not hasattr(args, "extra_args"):  # what parse_args does
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra_args = extra
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.group is None else 2
    try:
        code = int(handler(args) or 0)
        sys.stdout.flush()  # here, so that a reader that went away is met below, not at exit
        return code
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        _drop_stdout()
        return 141  # as a process killed by SIGPIPE
    except TLCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _drop_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush of what a closed pipe
    did not take fails no more (it printed a BrokenPipeError traceback)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a captured stdout)
        pass


def console_main() -> int:
    """The ``tlcore`` console script."""
    return main(prog="tlcore")
