"""Datasets: scan a folder-per-class tree, report its problems, decode, split, import.

- ``scan_dataset``   index (path, label, size, mode, format, bytes, hash) and problem report
- ``load_rgb``       decode any supported image to RGB uint8 correctly
- ``assign_splits``  deterministic stratified train/val/test split that stays put
- ``import_idx``     IDX (MNIST-format) files to a folder-per-class tree
- ``extract_zip``    safe extraction of uploaded archives (``zip_members``, ``read_member``:
  the same checks for readers that keep the files in memory)
- ``add_dataset`` … the workspace operations (register, rescan, load, remove)
- ``ensure_demo``    the bundled demo dataset
- ``add_overrides`` … the override manifest: keep / relabel / exclude decisions about single
  images (``load_overrides``, ``undo_overrides``, ``overrides_csv``, ``import_overrides_csv``),
  applied by ``dataset_splits`` (``apply_overrides``); near-duplicate groups the split keeps
  on one side (``save_split_groups``)
- ``registry_table`` … datasets described for people: the registry as a table, what a scan
  found and what to do about its problems, the problem report summed and filtered, its
  identical copies grouped (``identical_copies``)

Modules: ``_scan`` (the scanner and its rules), ``_imageio`` (decoding, resizing),
``_split`` (splits), ``_ops`` (register, rescan, load, remove; zip, IDX and
Fashion-MNIST datasets; split settings), ``_manifest`` (the override manifest's format,
reader and application), ``_overrides`` (changing it), ``_groups`` (near-duplicate
groups), ``_archive`` (zip extraction), ``_idx`` (IDX files, Fashion-MNIST lookup), ``_demo``, ``_report`` (tables and sentences for
the pages). The registry itself is ``tlcore.workspace``. Users: the Datasets and Home
pages (through ``tlui.data``'s cached loaders and ``tlui.datasets_widgets``),
``python -m tlcore datasets`` (``cli._datasets``), ``tlcore.trainer``
(``dataset_splits``), ``tlcore.pipeline`` and ``tlcore.predict`` (``load_rgb``,
``resize_to``).
"""

from tlcore.datasets._archive import MAX_ZIP_BYTES, extract_zip, read_member, zip_members
from tlcore.datasets._demo import DEMO_NAME, DEMO_PATH, ensure_demo
from tlcore.datasets._groups import group_keys, load_split_groups, save_split_groups, split_groups_path
from tlcore.datasets._idx import (
    FASHION_MNIST_CLASSES,
    find_fashion_mnist,
    import_fashion_mnist,
    import_idx,
    read_idx,
)
from tlcore.datasets._imageio import IMAGE_EXTENSIONS, load_rgb, read_header, resize_to, thumbnail
from tlcore.datasets._manifest import (
    OVERRIDE_ACTIONS,
    OVERRIDE_COLUMNS,
    Override,
    apply_overrides,
    current_overrides,
    load_overrides,
    overrides_csv,
    overrides_path,
    stale_overrides,
)
from tlcore.datasets._ops import (
    OWNED_SOURCES,
    add_dataset,
    add_fashion_mnist,
    add_idx_dataset,
    add_zip_dataset,
    check_name_free,
    dataset_splits,
    dataset_summary,
    folder_missing,
    folder_problem,
    kept_with_dataset,
    load_index,
    load_problems,
    load_scan_info,
    load_split_spec,
    remove_dataset,
    rescan_dataset,
    save_split_spec,
)
from tlcore.datasets._overrides import (
    add_overrides,
    dataset_relpath,
    import_overrides_csv,
    unchanged_decisions,
    undo_overrides,
)
from tlcore.datasets._report import (
    COPY_KINDS,
    REGISTRY_COLUMNS,
    filter_problems,
    identical_copies,
    name_from_filename,
    problem_counts,
    problems_advice,
    registry_table,
    scan_summary,
)
from tlcore.datasets._scan import SPLIT_NAMES, ScanOptions, ScanResult, scan_dataset
from tlcore.datasets._split import SPLITS, assign_splits, split_counts

__all__ = [
    "COPY_KINDS",
    "OVERRIDE_ACTIONS",
    "OVERRIDE_COLUMNS",
    "Override",
    "add_overrides",
    "apply_overrides",
    "current_overrides",
    "dataset_relpath",
    "group_keys",
    "import_overrides_csv",
    "load_overrides",
    "load_split_groups",
    "overrides_csv",
    "overrides_path",
    "save_split_groups",
    "split_groups_path",
    "stale_overrides",
    "unchanged_decisions",
    "undo_overrides",
    "DEMO_NAME",
    "DEMO_PATH",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "SPLIT_NAMES",
    "MAX_ZIP_BYTES",
    "OWNED_SOURCES",
    "REGISTRY_COLUMNS",
    "SPLITS",
    "ScanOptions",
    "ScanResult",
    "add_dataset",
    "add_fashion_mnist",
    "add_idx_dataset",
    "add_zip_dataset",
    "assign_splits",
    "check_name_free",
    "dataset_splits",
    "dataset_summary",
    "folder_missing",
    "folder_problem",
    "kept_with_dataset",
    "ensure_demo",
    "extract_zip",
    "filter_problems",
    "identical_copies",
    "find_fashion_mnist",
    "import_fashion_mnist",
    "import_idx",
    "load_index",
    "load_problems",
    "load_rgb",
    "load_scan_info",
    "load_split_spec",
    "name_from_filename",
    "problem_counts",
    "problems_advice",
    "read_header",
    "read_idx",
    "read_member",
    "registry_table",
    "remove_dataset",
    "rescan_dataset",
    "resize_to",
    "save_split_spec",
    "scan_dataset",
    "scan_summary",
    "split_counts",
    "thumbnail",
    "zip_members",
]
