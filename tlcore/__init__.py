"""tlcore: the library behind the transfer-learning workbench.

Everything that is not drawing widgets lives here; the Streamlit pages
(``streamlit_app.py``, ``pages/``, helpers in ``tlui``) and the ``python -m tlcore``
CLI are thin layers over it, and it never imports streamlit (a test holds that line).

Map of the package, one idea per module (each module's docstring says more):

- ``errors``     the exception family (``TLCoreError``); every message says what was
                 received, what was expected and how to fix it
- ``_fsutil``    atomic writes (file and folder) that every other module uses
- ``_yaml``      ``safe_load`` for YAML people write or upload (no aliases)
- ``workspace``  where things live on disk, data roots, the dataset registry
- ``appfiles``   where the workbench's own files are (the dashboard's files, the demo
                 dataset): in a source checkout or under an installed copy's prefix
- ``config``     typed specs that round-trip to dict/YAML: ``SplitSpec``, ``TrainSpec``;
                 the resize modes
- ``datasets/``  scan a folder-per-class tree, problem report, decoding, splits,
                 IDX import, zip uploads, the demo dataset, the workspace operations
- ``augment``    albumentations pipelines: catalogue, presets, validation, storage
- ``backbones/`` the backbone registry: EfficientNet-Lite0 (offline ImageNet weights),
                 keras.applications models; blocks for freeze depth
- ``model``      ``Classifier``: backbone + pooling + dropout + dense head; freeze
                 depth; the split at the freeze boundary for the feature cache
- ``cache``      ``ArrayCache``: the size-bounded, checksummed disk cache of arrays
- ``pipeline``   decoded-and-resized image arrays (cached), dataset fingerprints,
                 nested data subsets for successive halving
- ``probe``      the linear probe: a softmax regression on frozen features, every
                 run's starting head
- ``scout``      transferability scores (LogME, TransRate, LEEP, NCE) at every
                 block boundary in one forward pass: rank depths before training
- ``audit/``     trust the data: suspected label errors (confident learning on cached
                 features), near-duplicates and leakage across splits, photo quality; as
                 a background job; answered by the override manifest of ``datasets``
- ``background`` tlcore processes started in the background (search workers, scouts,
                 training jobs): start, reap, still running?, the end of the log
- ``startup``    start the Keras backend in a background process without its CPU-only
                 CUDA start-up noise in the log
- ``runtime``    backend set-up per process (threads, GPU memory growth, mixed
                 precision, seeds)
- ``trainer``    ``train``: one run from a ``TrainSpec`` (the three methods, the
                 feature cache, the probe head, rungs, the divergence guard, the run folder)
- ``runfolder``  ``RunFolder``: a trained run's folder, its file names, tolerant readers
                 and the atomic writer the trainer uses
- ``train_jobs`` one training run as a background job (the Train page, and every
                 ``python -m tlcore train``): its folder, state, per-epoch progress, stop
- ``dataset_users`` what on this machine uses a dataset now (training jobs, search
                 workers, scouts, audits), and removing a dataset only when nothing does
- ``calibration`` temperature scaling fitted on the validation split, expected calibration
                 error, reliability diagrams
- ``evaluate``   accuracy, per-class metrics, confusion matrix, top losses
- ``gradcam``    class activation heat maps, exact and backend-neutral
- ``predict``    load a trained model safely, predict "label (confidence %)", list
                 and re-evaluate runs
- ``tta``        test-time augmentation: an image's and its mirror image's probabilities
                 averaged
- ``batch_predict`` every image of a folder or a zip (read in memory, checked), a chunk
                 at a time: top-k, true labels from class folders, accuracy, CSV
- ``catalog``    every model of a workspace with a stable key: trained runs, search
                 trials that saved a model (fetched when used), exports
- ``export``     .keras, SavedModel, TFLite (float32, dynamic-range, float16, full int8),
                 ONNX, with a model card; every format checked against the Keras model
- ``exportcheck`` runs an exported file in its own runtime: the check images, int8
                 calibration images, accuracy, agreement, probability difference, latency
- ``search/``    Optuna: ``StudySpec``, storages, heartbeats, the artifact store, studies,
                 workers and their state files, local worker processes, trial attributes,
                 which value is better, the rung pruner, scout seeding, results (see
                 ``tlcore.search``)
- ``cli/``       ``python -m tlcore ...`` or the ``tlcore`` command (``__main__`` calls
                 ``tlcore.cli.main``); ``tlcore app`` starts the dashboard

How they fit: ``datasets`` registers images in a ``workspace``; ``trainer.train``
splits them (``datasets``), decodes them once (``pipeline`` + ``cache``), builds a
``model`` on a ``backbones`` entry, trains it under ``runtime``'s settings, scores it
with ``evaluate`` and writes a run folder (``runfolder``); ``predict``, ``gradcam`` and
``export`` use that folder. ``search`` runs many ``train`` calls as Optuna trials in
worker processes.

Import cost: what the dashboard's pages import (``backbones``, ``augment``, ``runtime``,
``predict``, ``export``, ...) never loads Keras (TensorFlow) or albumentations; the
functions that build, train or load a model, or build a pipeline, import them, so a page
draws before they load (``tests/test_page_imports.py``). ``model`` and ``trainer`` import
Keras at the top: only training and the CLI import them.
"""

import os as _os

# albumentations checks PyPI for updates at import time; never do that.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
__all__ = ["__version__"]
