"""tlcore must never import streamlit: the CLI and the workers run without it.

Two checks: every module of tlcore (found by walking the package, so modules
added later are covered) is imported in a fresh interpreter, which must end with
no ``streamlit`` in ``sys.modules``; and no source file under tlcore/ has an
import of streamlit, even one inside a function that the first check would miss.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TLCORE = REPO_ROOT / "tlcore"

_PROBE = r"""
import importlib, json, pkgutil, sys
import tlcore
names, failed = ["tlcore"], {}
def onerror(name):
    failed[name] = repr(sys.exc_info()[1])
for info in pkgutil.walk_packages(tlcore.__path__, "tlcore.", onerror=onerror):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # importing it would run the CLI
    try:
        importlib.import_module(info.name)
        names.append(info.name)
    except Exception as exc:
        failed[info.name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"imported": names, "failed": failed,
                  "streamlit": sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit."))}))
"""


def _streamlit_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [node.module or ""] if node.level == 0 else []
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
        ):
            mods = [node.args[0].value]
        else:
            continue
        found += [f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {m}" for m in mods
                  if m == "streamlit" or m.startswith("streamlit.")]
    return found


def test_importing_every_tlcore_module_does_not_import_streamlit():
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report["failed"], f"tlcore modules that fail to import: {report['failed']}"
    assert {"tlcore.datasets", "tlcore.workspace", "tlcore.cli"} <= set(report["imported"])
    assert report["streamlit"] == [], f"streamlit was imported by tlcore: {report['streamlit']}"


def test_no_tlcore_source_imports_streamlit():
    files = sorted(TLCORE.rglob("*.py"))
    assert files
    offending = [hit for f in files for hit in _streamlit_imports(f)]
    assert offending == [], "tlcore must not import streamlit:\n" + "\n".join(offending)
