"""Shared test helpers: plain functions and constants that several test modules use.

A test module (``tests/test_*.py``) imports helpers from here, never from another test
module (``tests/test_layout.py`` checks it). Fixtures stay in ``tests/conftest.py``.

- ``runs``: the session's tiny trained run (``tiny_run``), its three tinted classes
  (``TINY_CLASSES``) and the image tree it is trained on (``write_tinted_tree``).
- ``idx``: ``write_idx``, an IDX (MNIST-format) file writer.
- ``yamlbombs``: ``alias_bomb``, a "billion laughs" YAML spec.
"""
