"""The test folder's layout: no module under tests/ imports a test module (``test_*.py``).

Helpers that several test modules share live in ``tests/helpers/`` (or are fixtures in
``tests/conftest.py``). Importing one test module from another runs the imported module's
collection-time code twice, hides who depends on what, and turns a renamed test file into an
import error somewhere else. The check reads the source (``ast``): imports at module level and
inside functions, absolute (``tests.test_x``, ``from tests import test_x``), bare (``test_x``,
importable because pytest puts ``tests/`` on ``sys.path``) and relative.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TEST_MODULES = frozenset(p.stem for p in TESTS.rglob("test_*.py"))


def _is_test_module(name: str) -> bool:
    """Whether module ``name`` (``tests.test_x``, ``test_x``, ``.test_x``, ...) is a test module."""
    parts = name.lstrip(".").split(".")
    if not name.startswith(".") and parts[0] != "tests" and not (len(parts) == 1 and parts[0] in TEST_MODULES):
        return False  # a third-party or project module
    return any(part.startswith("test_") for part in parts)


def _imported(node: ast.AST) -> list[str]:
    """The modules an import statement names, as written (``from tests import test_x``: ``tests.test_x``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    module = "." * node.level + (node.module or "")
    if node.module and _is_test_module(module):
        return [module]
    sep = "" if module.endswith(".") else "."
    return [f"{module}{sep}{alias.name}" for alias in node.names]  # the names may be modules themselves


def imported_test_modules(source: str) -> list[str]:
    """The test modules that ``source`` imports anywhere (module level or inside a function)."""
    return sorted({name for node in ast.walk(ast.parse(source)) for name in _imported(node) if _is_test_module(name)})


def test_the_scanner_finds_every_way_to_import_a_test_module():
    assert TEST_MODULES >= {"test_predict", "test_layout"}
    cases = {
        "from tests.test_predict import tiny_run": ["tests.test_predict"],
        "import tests.test_predict": ["tests.test_predict"],
        "import tests.test_predict as tp": ["tests.test_predict"],
        "from tests import test_predict": ["tests.test_predict"],
        "from tests.e2e.test_browser_flow import x": ["tests.e2e.test_browser_flow"],
        "import test_predict": ["test_predict"],
        "from test_predict import tiny_run": ["test_predict"],
        "from .test_predict import tiny_run": [".test_predict"],
        "from . import test_predict": [".test_predict"],
        "def f():\n    from tests.test_idx import write_idx\n": ["tests.test_idx"],
    }
    for source, expected in cases.items():
        assert imported_test_modules(source) == sorted(expected), source
    for fine in ("import pytest", "from tests.helpers.runs import tiny_run", "from tests import helpers",
                 "from tests.helpers.searchfix import tiny_spec", "import test_utils_of_a_library", "from . import conftest",
                 "from tlcore.search import test_storage_dir"):
        assert imported_test_modules(fine) == [], fine


def test_no_module_under_tests_imports_a_test_module():
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        found = imported_test_modules(path.read_text(encoding="utf-8"))
        if found:
            offenders[path.relative_to(TESTS.parent).as_posix()] = found
    assert not offenders, ("Move what these modules import from test modules into tests/helpers/ "
                           f"(or a fixture in tests/conftest.py): {offenders}")


def test_shared_helpers_live_in_tests_helpers():
    """Beside the test modules, tests/ holds only conftest.py: a helper module there would be importable
    both as ``tests.x`` and, through pytest's rootdir on sys.path, as ``x``: two copies of its state."""
    loose = sorted(p.name for p in TESTS.glob("*.py")
                   if not p.name.startswith("test_") and p.name not in {"conftest.py", "__init__.py"})
    assert not loose, f"Move these into tests/helpers/: {loose}"
