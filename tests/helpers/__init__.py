"""Shared test helpers: plain functions and constants that several test modules use.

A test module (``tests/test_*.py``) imports helpers from here, never from another test
module (``tests/test_layout.py`` checks it). Fixtures stay in ``tests/conftest.py``.

- ``runs``: the session's tiny trained run (``tiny_run``), its three tinted classes
  (``TINY_CLASSES``) and the image tree it is trained on (``write_tinted_tree``).
- ``idx``: ``write_idx``, an IDX (MNIST-format) file writer.
- ``yamlbombs``: ``alias_bomb``, a "billion laughs" YAML spec.
- ``tflite``: ``tflite_predict`` (an exported ``.tflite`` model run by TensorFlow Lite's interpreter,
  quantized inputs and outputs included) and ``tflite_interpreter``.
- ``imagegen``: synthetic images and image trees (every format, broken files, EXIF rotations).
- ``searchfix``: the session's tiny study and its spec (``tiny_spec``, ``tiny_study``), trained once.
- ``handmodel``: Keras models built by hand (right by construction on tinted images, or mirror-
  sensitive), saved as run or export folders; a run's files put in the artifact store.
- ``handstudy``: studies built by hand, trial by trial, for pages that must show every outcome
  without training anything.
- ``pagetest``: running pages under Streamlit's ``AppTest`` and reading what they show.
- ``pgserver``: a private throw-away PostgreSQL cluster for the database tests (``conftest.py``'s
  fixtures use it).
- ``zips``: zip archives as users make them, with a symbolic link and an empty class folder.
- ``auditgen``: photo-like images and their near-duplicates (resized, re-encoded, cropped), blurred
  and darkened copies, for the audit's tests.
"""
