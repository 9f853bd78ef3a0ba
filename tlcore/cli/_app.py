"""``tlcore app``: start the dashboard with the project's Streamlit settings, from any folder.

Streamlit reads ``.streamlit/config.toml`` only from the current directory, so
``streamlit run`` started elsewhere would lose the upload limit, XSRF protection,
the theme and the rest. This command:

1. finds the app folder (``streamlit_app.py``, ``pages/``, ``.streamlit/config.toml``):
   ``--app-dir`` if given, else ``tlcore.appfiles.find_app_dir()``: the source checkout
   this ``tlcore`` was imported from, else the copy ``pip install .`` put under
   ``<prefix>/share/tlcore-workbench/app``;
2. turns every option of that ``config.toml`` into a ``--section.option=value`` flag
   (options the user passes themselves are left to the user);
3. sets ``TLCORE_HOME`` to the workspace (``--workspace``, else ``$TLCORE_HOME``, else
   ``./workspace``) so that the pages and the workers they start agree on it;
4. replaces itself with ``python -m streamlit run <app>/streamlit_app.py FLAGS EXTRA``,
   where EXTRA is every argument this command does not know (``--server.port 8600``,
   ``--server.address 127.0.0.1``, ...), passed through unchanged.

``--dry-run`` prints the command instead of running it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
import tomllib
from pathlib import Path

from tlcore import appfiles
from tlcore.errors import ConfigError, NotFoundError

__all__ = ["app_dir", "config_flags", "streamlit_command"]


def app_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The app folder: ``explicit`` (``--app-dir``) if given, else ``tlcore.appfiles.find_app_dir()``."""
    if explicit is None:
        return appfiles.find_app_dir()
    d = Path(explicit).expanduser().resolve()
    if appfiles.is_app_dir(d):
        return d
    raise NotFoundError(
        "The folder given with --app-dir is not the workbench's app folder.",
        received=str(d),
        fix=f"Give the repository root, the folder that holds {appfiles.MAIN_SCRIPT}, {appfiles.PAGES_DIR}/ and "
        f"{appfiles.CONFIG_FILE}.",
    )


def _flag_values(value: object) -> list[str]:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, list):
        return [v for item in value for v in _flag_values(item)]
    return [str(value)]


def _flatten(table: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.extend(_flatten(value, name))
        else:
            out.append((name, value))
    return out


def config_flags(config_file: Path, *, skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``config.toml``'s options as ``--section.option=value`` flags for ``streamlit run``.

    A list becomes one flag per item (Streamlit's list options take the flag
    repeatedly); options named in ``skip`` (the user's own flags) are left out.
    """
    try:
        config = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("The dashboard's Streamlit settings cannot be read.", received=f"{config_file}: {exc}",
                          fix="Restore .streamlit/config.toml from the repository.") from exc
    return [f"--{name}={v}" for name, value in _flatten(config) if name not in skip for v in _flag_values(value)]


def _user_options(extra: list[str]) -> set[str]:
    """The Streamlit options among the pass-through arguments (``--server.port 8600`` -> server.port)."""
    return {a[2:].split("=", 1)[0] for a in extra if a.startswith("--") and "." in a.split("=", 1)[0]}


def streamlit_command(folder: Path, extra: list[str]) -> list[str]:
    """The ``python -m streamlit run`` command line for the app in ``folder``."""
    flags = config_flags(folder / appfiles.CONFIG_FILE, skip=_user_options(extra))
    return [sys.executable, "-m", "streamlit", "run", *flags, str(folder / appfiles.MAIN_SCRIPT), *extra]


def cmd_app(args: argparse.Namespace) -> int:
    from tlcore.workspace import Workspace

    extra = list(args.extra_args or [])
    if extra[:1] == ["--"]:
        extra = extra[1:]
    folder = app_dir(args.app_dir)
    if importlib.util.find_spec("streamlit") is None:
        raise NotFoundError("Streamlit is not installed in this Python environment.", received=sys.executable,
                            fix="Install the dependencies: pip install -r requirements.txt (or pip install . "
                                "without --no-deps).")
    workspace = Workspace(args.workspace).root  # --workspace, $TLCORE_HOME or ./workspace; creates nothing
    cmd = streamlit_command(folder, extra)
    print(f"App:       {folder}")
    print(f"Workspace: {workspace}")
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    env = {**os.environ, "TLCORE_HOME": str(workspace)}
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app", help="start the dashboard (Streamlit) with the project's settings, from any folder",
        description="Start the dashboard with the settings of the project's .streamlit/config.toml (upload limit, "
        "XSRF protection, theme, ...), wherever it is started from. Arguments this command does not know go to "
        "'streamlit run' unchanged, e.g. 'tlcore app --server.port 8600 --server.address 127.0.0.1'; they win "
        "over config.toml.",
        epilog="The app files are looked for in the source checkout first, then under "
        f"<prefix>/{appfiles.APP_SHARE_DIR.as_posix()} (where 'pip install .' puts them).",
    )
    # SUPPRESS: without --workspace here, the global one (given before 'app') stays in force.
    p.add_argument("--workspace", metavar="DIR", default=argparse.SUPPRESS,
                   help="workspace folder (default: $TLCORE_HOME or ./workspace); exported as TLCORE_HOME")
    p.add_argument("--app-dir", metavar="DIR", default=None,
                   help="the folder holding streamlit_app.py, pages/ and .streamlit/config.toml (default: found)")
    p.add_argument("--dry-run", action="store_true", help="print the streamlit command instead of running it")
    # extra_args: tlcore.cli.main hands this command the arguments it does not know.
    p.set_defaults(handler=cmd_app, extra_args=[])
