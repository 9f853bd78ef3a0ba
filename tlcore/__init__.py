"""tlcore: the library behind the transfer-learning workbench.

Everything that is not drawing widgets lives here; the Streamlit pages and the
``python -m tlcore`` CLI are thin layers over it, and it never imports streamlit.

Modules, one idea each:

- ``errors``     the exception family; every message says what, expected, how to fix
- ``workspace``  where things live on disk, data roots, the dataset registry
- ``config``     typed specs that round-trip to dict/YAML
- ``datasets``   scan, problem report, decoding, splits, IDX import, demo data, uploads
- ``augment``    albumentations pipelines: catalogue, presets, validation, storage
- ``backbones``  the backbone registry: EfficientNet-Lite0 (offline ImageNet weights),
                 keras.applications models; blocks for freeze depth
- ``model``      backbone + pooling + dropout + dense head; freeze depth; split for the cache
- ``cache``      the size-bounded, checksummed disk cache of arrays
- ``pipeline``   decoded-image arrays and the resize rule
- ``trainer``    one run from a ``TrainSpec``: the three methods, the feature cache, artifacts
- ``runtime``    backend set-up (threads, GPU memory growth, mixed precision, seeds)
- ``evaluate``   accuracy, per-class metrics, confusion matrix, top losses
- ``gradcam``    class activation heat maps, exact and backend-neutral
- ``predict``    load a trained model safely and predict "label (confidence %)"
- ``export``     .keras, SavedModel, TFLite (float and dynamic-range) with a model card
- ``cli``        ``python -m tlcore ...``
"""

import os as _os

# albumentations checks PyPI for updates at import time; never do that.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
__all__ = ["__version__"]
