"""A page draws before the deep-learning stack loads: no page's imports load TensorFlow.

Importing TensorFlow (through Keras) takes 4 s on a warm machine and 10-15 s on a cold
one, albumentations with OpenCV about a second; a page whose module imports reach them
shows nothing (no sidebar, no title) for that long on its first visit. So the library
imports them inside the functions that use them (``tlcore.backbones`` builds models,
``tlcore.augment`` builds pipelines, ``tlcore.runtime`` configures the backend), and the
app imports them only when it loads a model, under a spinner.

Checked in a fresh interpreter: the entry script's imports, every ``tlui`` module, and the
module-level imports of every page file (read with ``ast``; the pages themselves are not
run). An import hook notes, for each forbidden module, the chain of project files whose
imports first reached it, so a failure says which line to change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# What a page's imports must not load: the deep-learning stack and the augmentation library.
HEAVY = ("tensorflow", "keras", "jax", "torch", "albumentations", "cv2")

_PROBE = r"""
import ast, builtins, importlib, json, pkgutil, sys, traceback
from pathlib import Path

heavy, root = set(sys.argv[1].split(",")), Path.cwd()
chains = {}
real_import = builtins.__import__


def noting_import(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.split(".")[0] if level == 0 else ""
    if top in heavy and top not in sys.modules and top not in chains:
        chains[top] = [f"{Path(f.filename).relative_to(root)}:{f.lineno}" for f in traceback.extract_stack()[:-1]
                       if f.filename.startswith(str(root)) and "/.venv/" not in f.filename
                       and not f.filename.startswith(str(root / "tests"))]
    return real_import(name, globals, locals, fromlist, level)


builtins.__import__ = noting_import


def module_imports(path):
    # The page's module-level imports, as the page would run them (not those inside functions).
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")


import tlui
imported = ["streamlit_app.py"]
module_imports(root / "streamlit_app.py")
for info in pkgutil.iter_modules(tlui.__path__, "tlui."):
    importlib.import_module(info.name)
    imported.append(info.name)
for page in sorted((root / "pages").glob("*.py")):
    module_imports(page)
    imported.append(str(page.relative_to(root)))
print(json.dumps({"imported": imported, "chains": chains,
                  "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""


def test_no_page_import_loads_tensorflow_or_albumentations():
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _PROBE, ",".join(HEAVY)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "pages/3_Train.py" in report["imported"] and "tlui.common" in report["imported"]
    chains = "\n".join(f"  {m}: {' -> '.join(chain) or '(outside the project)'}"
                       for m, chain in sorted(report["chains"].items()) if m in report["loaded"])
    assert report["loaded"] == [], (
        f"importing the pages loads {report['loaded']}; import it inside the function that needs it. "
        f"First import chains:\n{chains}")
