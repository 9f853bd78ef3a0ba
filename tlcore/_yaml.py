"""YAML that people write or upload: plain types only, and no aliases.

``yaml.safe_load`` builds only plain types, but it follows aliases: a few hundred
bytes of nested ``&a``/``*a`` references (a "billion laughs" file) describe a
structure with billions of items, which is cheap to load and then hangs whatever
walks it (validation, ``repr`` in an error message, JSON). Specs and settings never
need aliases, so here an alias is a ``yaml.YAMLError`` naming its line.

``safe_load(text)`` is the entry point, ``error_line(exc)`` its error in one line for a
message; ``config`` (every ``Spec.from_yaml``, so
also study and augmentation specs), ``augment`` (``parse_spec_text``: pipelines
uploaded or pasted as YAML or JSON), ``workspace`` (``workspace.yaml``) and
``runfolder`` (``RunFolder.read_spec``: a run's ``spec.yaml``, which ``predict``
uses) read YAML through it. Writing stays
``yaml.safe_dump`` (``Spec.to_yaml``, ``_fsutil.atomic_write_yaml``).

Example:

>>> safe_load("steps: [{name: HorizontalFlip}]")
{'steps': [{'name': 'HorizontalFlip'}]}
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["safe_load", "error_line"]


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed here; write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


# YAML 1.1 (PyYAML) reads 1e-4 and 3.0e5 as text (its floats need a dot and a signed exponent): a
# learning rate written so was refused as "not a number". Read them as YAML 1.2 and people do.
_NoAliasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def safe_load(text: str | bytes) -> Any:
    """Like ``yaml.safe_load``, but an alias raises ``yaml.YAMLError``."""
    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def error_line(exc: yaml.YAMLError) -> str:
    """A YAML error in one line, where and what (1-based, as editors count): e.g.
    ``line 2, column 1: expected ',' or ']', but got '<stream end>'``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem
