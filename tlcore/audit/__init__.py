"""Trust the data: suspected label errors, near-duplicates and leakage, photo quality.

- ``_confident`` confident learning (Northcutt et al., JAIR 2021), written from the paper:
                 the confident joint, its calibration, the flagged images, the ranking by
                 self-confidence or normalized margin, the classes confused as a whole; the
                 out-of-fold probabilities of a k-fold logistic regression on frozen features
- ``_neardup``   near-duplicates: candidates from features (cosine), a small grayscale
                 descriptor and perceptual hashes (dHash, pHash, in numpy), confirmed by the
                 pixels (crop-aware); groups
- ``_quality``   blurry, too dark, too bright, almost uniform: measured values and thresholds
- ``_run``       ``audit_dataset``: the whole audit of a registered dataset on cached
                 features, its ``AuditSpec`` and ``AuditResult``, saved audits
                 (``list_audits``, ``load_audit``)
- ``_jobs``      the audit as a background job (``launch_audit``, ``audit_status``,
                 ``audit_jobs``), for the Datasets page

People's answers to the flags (keep, relabel, exclude) are the dataset's override manifest,
``tlcore.datasets.add_overrides`` and friends; ``tlcore.datasets.dataset_splits`` applies
them, so the split, training, search and evaluation all see them. Users:
``python -m tlcore datasets audit | relabel | exclude | keep | overrides`` (``cli._datasets``),
the Datasets page's Audit tab, ``bench/bench_audit.py``.

Example:

>>> from tlcore.audit import AuditSpec, audit_dataset
>>> from tlcore.datasets import add_overrides
>>> result = audit_dataset(ws, "fmnist", AuditSpec(image_size=96))
>>> issues = result.label_issues()
>>> add_overrides(ws, "fmnist", issues["relpath"][:10], "exclude", flag="label_issue")
"""

from tlcore.audit._confident import (
    ISSUE_METHODS,
    RANKINGS,
    calibrate_joint,
    confident_joint,
    confused_pairs,
    find_label_issues,
    label_quality_scores,
    out_of_fold_probabilities,
    per_class_thresholds,
    stratified_folds,
    suggested_labels,
)
from tlcore.audit._jobs import audit_jobs, audit_status, launch_audit
from tlcore.audit._neardup import (
    DEFAULT_SIMILARITY,
    dhash,
    filter_pairs,
    group_pairs,
    hamming_matrix,
    near_duplicate_pairs,
    phash,
    pixel_similarity,
    small_gray,
)
from tlcore.audit._quality import QUALITY_FLAGS, QualityThresholds, image_measures, quality_flags
from tlcore.audit._run import AuditResult, AuditSpec, audit_dataset, list_audits, load_audit

__all__ = [
    "AuditResult",
    "AuditSpec",
    "DEFAULT_SIMILARITY",
    "ISSUE_METHODS",
    "QUALITY_FLAGS",
    "QualityThresholds",
    "RANKINGS",
    "audit_dataset",
    "audit_jobs",
    "audit_status",
    "calibrate_joint",
    "confident_joint",
    "confused_pairs",
    "dhash",
    "filter_pairs",
    "find_label_issues",
    "group_pairs",
    "hamming_matrix",
    "image_measures",
    "label_quality_scores",
    "launch_audit",
    "list_audits",
    "load_audit",
    "near_duplicate_pairs",
    "out_of_fold_probabilities",
    "per_class_thresholds",
    "phash",
    "pixel_similarity",
    "quality_flags",
    "small_gray",
    "stratified_folds",
    "suggested_labels",
]
