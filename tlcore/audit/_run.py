"""One audit of a dataset: suspected label errors, near-duplicates and leakage, photo quality.

``audit_dataset(ws, name, spec)`` reads the dataset as training will (``dataset_splits``:
the override manifest applied, near-duplicate groups kept together), then:

1. **Features**: the backbone's pooled final features (EfficientNet-Lite0, 96 px by default)
   of every usable image, one forward pass, kept in the feature cache
   (``<workspace>/cache/features``, kind ``audit_features``) under the fingerprint of the
   scanned images (not of the decisions), so a second audit, also after keep / relabel /
   exclude decisions, costs no forward pass.
2. **Image measures**: a small grayscale version of each image (at most 256 px, never
   enlarged) gives the quality measures and the perceptual hashes (``_quality``), cached the
   same way (kind ``audit_image_stats``).
3. **Label audit** of the splits in ``spec.splits`` (train and val; never the test split
   unless asked): out-of-fold probabilities from a k-fold multinomial logistic regression
   on the features, then confident learning (``_confident``): the confident joint, the
   flagged images ranked by self-confidence (or normalized margin), the classes confused as
   a whole.
4. **Near-duplicates** over every split (``_neardup``): candidates from the features'
   nearest neighbours and the perceptual hashes, confirmed by the pixels (crop-aware); groups;
   pairs across splits are leakage. With ``spec.group_split``
   the groups are saved (``tlcore.datasets.save_split_groups``) and every later split keeps
   each group on one side; ``leakage_after`` says which pairs that does not resolve
   (pre-split folders, which keep the split their folders give).
5. **Quality flags** (``_quality``): blurry, too dark, too bright, almost uniform.

Everything is written, atomically, to ``<workspace>/datasets/<name>/audits/<id>/``
(``summary.json``, ``labels.parquet``, ``pairs.parquet``, ``quality.parquet``,
``probabilities.npy``), ``<id>`` being the start time and a random suffix, so two audits of
one dataset at once each write their own folder and neither reads half of the other's.
``list_audits`` / ``load_audit`` read them back, with each image's current decision
(``decision`` column) from the override manifest. The tables record each image by its
``relpath`` inside the dataset's folder, never by an absolute path: ``load_audit`` joins it to
the folder the dataset is registered at now (``ws.get_dataset(name).path``, as ``load_index``
does), so an audit still shows and acts on the right images after the workspace is moved or
copied, or the dataset is registered again at another folder (``--overwrite``). Audits an older
version saved hold a ``path`` column too: it is read the same way, never as it was written
(it named the workspace or folder the audit ran in).

Example:

>>> result = audit_dataset(ws, "fmnist", AuditSpec(image_size=96))
>>> result.label_issues()[["relpath", "label", "suggested", "self_confidence"]].head()
>>> [p["text"] for p in result.confused_pairs()[:3]]   # "Shirt vs T-shirt/top: 41 images look swapped"
>>> result.near_duplicates(similarity=0.99)             # move the threshold over the saved pairs
>>> result.quality_issues()
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlcore._fsutil import atomic_directory, atomic_write_bytes, atomic_write_json, read_json
from tlcore.audit._confident import (
    ISSUE_METHODS,
    RANKINGS,
    calibrate_joint,
    check_foldable,
    confident_joint,
    confused_pairs,
    find_label_issues,
    label_quality_scores,
    out_of_fold_probabilities,
    suggested_labels,
)
from tlcore.audit._neardup import (
    DEFAULT_HAMMING,
    DEFAULT_NEIGHBORS,
    DEFAULT_SIMILARITY,
    THUMB_SIDE,
    filter_pairs,
    group_pairs,
    near_duplicate_pairs,
    small_gray,
)
from tlcore.audit._quality import (
    HASH_COLUMNS,
    MEASURES,
    QUALITY_FLAGS,
    QUALITY_SIDE,
    QualityThresholds,
    image_measures,
    join_hash,
    luminance,
    quality_flags,
)
from tlcore.backbones import weights_identity
from tlcore.config import RESIZE_MODES, Spec, _check_float, _check_int
from tlcore.errors import ConfigError, DatasetError, NotFoundError, TLCoreError
from tlcore.workspace import Workspace

__all__ = ["AuditSpec", "AuditResult", "audit_dataset", "list_audits", "load_audit", "audits_dir", "AUDIT_SPLITS"]

AUDIT_SPLITS = ("train", "val", "test")
FEATURES_VERSION = 1
STATS_VERSION = 3
Progress = Callable[[str, int, int], None]


def _default_splits() -> list[str]:
    return ["train", "val"]


@dataclasses.dataclass(frozen=True)
class AuditSpec(Spec):
    """What an audit looks at and where its flags start.

    Args:
        backbone: whose pooled final features. Defaults to "efficientnet_lite0" (offline weights).
        weights: "imagenet", a weights file, or None (random: tests only). Defaults to "imagenet".
        image_size: input side in pixels. Defaults to 96 (fast on a CPU).
        resize_mode: "pad", "crop" or "stretch". Defaults to "pad".
        splits: the splits whose labels are audited. Defaults to ["train", "val"]: the test split
            only when asked for. Near-duplicates and quality are checked on every split.
        folds: k of the k-fold cross-validation. Defaults to 5.
        seed: the folds' seed. Defaults to 0.
        dims: principal components of the features the regression uses (None: all). Defaults to 256.
        method: how confident learning picks the flagged images (``ISSUE_METHODS``).
            Defaults to "prune_by_noise_rate".
        ranking: "self_confidence" or "normalized_margin". Defaults to "self_confidence".
        out_of_class: flag only images whose label gets less probability than that class gets on
            average in other classes' images (``find_label_issues``). Defaults to True: on
            clean Fashion-MNIST it cut the flags from 243 to 47.
        similarity: a pair is a near-duplicate from this pixel similarity (``_neardup``:
            1 = the same pixels). Defaults to 0.995.
        pairs_similarity: pairs down to this are saved too, so the threshold can be moved below the
            audit's own afterwards. Defaults to 0.98.
        neighbors: nearest neighbours per image (by features, and by a small grayscale descriptor)
            compared pixel by pixel. Defaults to 10.
        hamming: pairs whose pHash differs in at most this many bits are compared too (-1: hashes
            off). Defaults to 4.
        group_split: save the near-duplicate groups so that the split keeps each on one side.
            Defaults to True.
        blur, dark, bright, entropy: the quality thresholds (``QualityThresholds``).
        batch_size: images per forward call. Defaults to 64.
    """

    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    image_size: int = 96
    resize_mode: str = "pad"
    splits: list[str] = dataclasses.field(default_factory=_default_splits)
    folds: int = 5
    seed: int = 0
    dims: int | None = 256
    method: str = "prune_by_noise_rate"
    ranking: str = "self_confidence"
    out_of_class: bool = True
    similarity: float = DEFAULT_SIMILARITY
    pairs_similarity: float = 0.98
    neighbors: int = DEFAULT_NEIGHBORS
    hamming: int = DEFAULT_HAMMING
    group_split: bool = True
    blur: float = QualityThresholds.blur
    dark: float = QualityThresholds.dark
    bright: float = QualityThresholds.bright
    entropy: float = QualityThresholds.entropy
    batch_size: int = 64

    def validate(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ConfigError("backbone must be a backbone name.", received=f"backbone={self.backbone!r}")
        _check_int("image_size", self.image_size, 32, 1024)
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError("Unknown resize_mode.", received=repr(self.resize_mode),
                              fix=f"Use one of {', '.join(RESIZE_MODES)}.")
        if not isinstance(self.splits, (list, tuple)) or not self.splits:
            raise ConfigError("splits must name at least one of train, val, test.", received=f"splits={self.splits!r}",
                              fix="For example ['train', 'val'] (the default).")
        unknown = [s for s in self.splits if s not in AUDIT_SPLITS]
        if unknown:  # "at least one of" misled when the others were fine: name the ones that are not
            aliases = {"validation": "val", "valid": "val", "training": "train", "testing": "test"}
            spelled = [f"{s!r} is written {aliases[str(s).lower()]!r}" for s in unknown if str(s).lower() in aliases]
            raise ConfigError(f"splits may only name train, val and test; {', '.join(map(repr, unknown))} is not one "
                              "of them.", received=f"splits={list(self.splits)!r}",
                              fix=("; ".join(spelled) + ". " if spelled else "")
                              + "For example ['train', 'val'] (the default).")
        _check_int("folds", self.folds, 2, 50)
        _check_int("seed", self.seed, 0)
        if self.dims is not None:
            _check_int("dims", self.dims, 2)
        if self.method not in ISSUE_METHODS:
            raise ConfigError("Unknown method.", received=repr(self.method), fix=f"Use one of {', '.join(ISSUE_METHODS)}.")
        if self.ranking not in RANKINGS:
            raise ConfigError("Unknown ranking.", received=repr(self.ranking), fix=f"Use one of {', '.join(RANKINGS)}.")
        _check_float("similarity", self.similarity, 0.0, 1.0, lo_open=True)
        _check_float("pairs_similarity", self.pairs_similarity, 0.0, 1.0, lo_open=True)
        _check_int("neighbors", self.neighbors, 0, 1000)
        _check_int("hamming", self.hamming, -1, 64)
        if not isinstance(self.out_of_class, bool):
            raise ConfigError("out_of_class must be true or false.", received=f"out_of_class={self.out_of_class!r}")
        if not isinstance(self.group_split, bool):
            raise ConfigError("group_split must be true or false.", received=f"group_split={self.group_split!r}")
        self.quality_thresholds()  # checks them
        _check_int("batch_size", self.batch_size, 1, 4096)

    def quality_thresholds(self) -> QualityThresholds:
        return QualityThresholds(blur=self.blur, dark=self.dark, bright=self.bright, entropy=self.entropy)


# ------------------------------------------------------------------ results
@dataclasses.dataclass
class AuditResult:
    """A finished audit (see the module docstring).

    Attributes:
        id, dataset: which audit of which dataset.
        summary: everything in ``summary.json``: the spec, counts, timings, the confident joint,
            the confused classes, notes.
        labels: one row per audited image: ``relpath``, ``path`` (absolute: the dataset's folder now, see
            the module docstring), ``split``, ``label`` (as
            trained: after relabel decisions), ``suggested`` (the most probable other class),
            ``self_confidence``, ``normalized_margin``, ``score`` (the spec's ranking; lower is
            more suspicious), ``issue`` (flagged), ``rank`` (1 = most suspicious), ``decision``;
            sorted by rank.
        pairs: near-duplicate pairs: ``relpath_a``, ``relpath_b``, ``label_a``, ``label_b``,
            ``split_a``, ``split_b``, ``similarity`` (pixels), ``cosine`` (features), ``hamming``
            (pHash), ``near_duplicate`` (at the audit's threshold), ``kind`` ("leakage", "cross_class", "within_class"), ``group``,
            ``leakage_after`` (still across splits once the groups are kept together),
            ``decision_a``, ``decision_b``.
        quality: one row per image: ``relpath``, ``path``, ``split``, ``label``, the measures (``sharpness``, ``highlights``, ``shadows``,
            ``entropy``, ``brightness``), the flags (``blurry``, ``dark``, ``bright``, ``uniform``,
            ``flags``), ``decision``.
        probabilities: the out-of-fold probabilities, one row per row of ``labels`` (same order),
            one column per class of ``summary["class_names"]``.
    """

    id: str
    dataset: str
    summary: dict[str, Any]
    labels: pd.DataFrame
    pairs: pd.DataFrame
    quality: pd.DataFrame
    probabilities: np.ndarray
    folder: Path | None = None

    @property
    def spec(self) -> AuditSpec:
        return AuditSpec.from_dict(self.summary["spec"])

    @property
    def class_names(self) -> list[str]:
        return list(self.summary["class_names"])

    @property
    def joint(self) -> np.ndarray:
        """The confident joint C (rows: given label, columns: the class it confidently looks like)."""
        return np.asarray(self.summary["labels"]["joint"], dtype=np.int64)

    def label_issues(self, *, include_reviewed: bool = True) -> pd.DataFrame:
        """The flagged images, most suspicious first (without those already decided about, unless asked)."""
        out = self.labels[self.labels["issue"]]
        if not include_reviewed:
            out = out[out["decision"] == ""]
        return out.reset_index(drop=True)

    def confused_pairs(self, *, min_count: int = 1) -> list[dict[str, Any]]:
        """Classes confused as a whole, most first: "Shirt vs T-shirt: 41 images look swapped"."""
        return confused_pairs(self.joint, self.class_names, min_count=min_count)

    def near_duplicates(self, *, similarity: float | None = None) -> pd.DataFrame:
        """The pairs from this pixel similarity up (default: the audit's own threshold); only pairs the
        audit saved (down to ``pairs_similarity``) can be found."""
        return filter_pairs(self.pairs, similarity=self.spec.similarity if similarity is None else similarity)

    def leakage(self, *, similarity: float | None = None) -> pd.DataFrame:
        """Near-duplicate pairs whose images are in different splits."""
        pairs = self.near_duplicates(similarity=similarity)
        return pairs[pairs["kind"] == "leakage"].reset_index(drop=True)

    def quality_issues(self, thresholds: QualityThresholds | None = None) -> pd.DataFrame:
        """The images with a quality flag (at ``thresholds``, default the audit's own)."""
        q = self.quality
        if thresholds is not None:
            q = pd.concat([q.drop(columns=[*QUALITY_FLAGS, "flags"]), quality_flags(q, thresholds)], axis=1)
        return q[q["flags"] != ""].reset_index(drop=True)


def audits_dir(ws: Workspace, name: str) -> Path:
    """``<workspace>/datasets/<name>/audits``: one folder per finished audit, and ``jobs/``."""
    return ws.dataset_dir(name, create=False) / "audits"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _new_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"


# ------------------------------------------------------------------ cached inputs
def _fingerprint(rows: pd.DataFrame) -> str:
    from tlcore.pipeline import dataset_fingerprint

    return dataset_fingerprint(rows)


def _features(ws: Workspace, rows: pd.DataFrame, spec: AuditSpec, progress: Progress | None,
              notes: list[str]) -> tuple[np.ndarray, bool]:
    """Pooled final features of ``rows`` (n × D float32) and whether they came from the cache."""
    from tlcore.cache import ArrayCache

    cache = ArrayCache(ws.cache_dir / "features")
    parts = {"kind": "audit_features", "version": FEATURES_VERSION, "backbone": spec.backbone,
             "weights": weights_identity(spec.weights, spec.seed), "size": spec.image_size, "resize": spec.resize_mode,
             "data": _fingerprint(rows), "rows": int(len(rows))}
    hit = cache.contains(parts)

    def make() -> np.ndarray:
        from tlcore import backbones as bb
        from tlcore.pipeline import load_image_array
        from tlcore.runtime import configure, forward_batches, set_seed

        images = load_image_array(rows, spec.image_size, spec.resize_mode, cache=ArrayCache(ws.cache_dir / "images"),
                                  progress=(lambda d, t: progress("Decoding images", d, t)) if progress else None)
        configure()
        set_seed(spec.seed)
        model = bb.build(spec.backbone, input_shape=(spec.image_size, spec.image_size, 3), include_top=False,
                         weights=spec.weights, cache_dir=ws.cache_dir, pooling="avg")
        if not len(images):
            return np.zeros((0, 1), np.float16)
        what = f"Features ({bb.get(spec.backbone).display_name}, {spec.image_size} px)"
        return np.asarray(forward_batches(model, images, spec.batch_size,
                                          on_batch=(lambda d, t: progress(what, d, t)) if progress else None),
                          dtype=np.float16)

    feats = np.asarray(cache.get_or_create(parts, make, exclusive=True), dtype=np.float32)
    if not np.isfinite(feats).all():
        notes.append("Some features were not finite (float16 overflow) and were set to 0.")
        feats = np.where(np.isfinite(feats), feats, 0.0).astype(np.float32)
    return feats, hit


def _measure_one(path: str, side: int) -> tuple[dict[str, float], np.ndarray]:
    from tlcore.datasets import thumbnail

    rgb = thumbnail(path, size=side)
    return image_measures(rgb), small_gray(luminance(rgb))


def _image_stats(ws: Workspace, rows: pd.DataFrame,
                 progress: Progress | None) -> tuple[pd.DataFrame, list[np.ndarray], np.ndarray, bool]:
    """Per image of ``rows``: the quality measures and perceptual hashes (``_quality``), the grayscale
    thumbnail the near-duplicate check compares (``_neardup.small_gray``) and its scale (thumbnail
    pixels per original pixel); and whether they came from the cache (two entries of the feature
    cache, kind ``audit_image_stats``)."""
    from tlcore.cache import ArrayCache
    from tlcore.pipeline import default_workers

    columns = [*MEASURES, *HASH_COLUMNS]
    cache = ArrayCache(ws.cache_dir / "features")
    base = {"kind": "audit_image_stats", "version": STATS_VERSION, "side": QUALITY_SIDE, "thumb": THUMB_SIDE,
            "data": _fingerprint(rows), "rows": int(len(rows))}
    parts = {**base, "what": "measures", "columns": columns}
    thumb_parts = {**base, "what": "thumbnails"}
    hit = cache.contains(parts) and cache.contains(thumb_parts)
    paths = rows["path"].astype(str).tolist()
    w = rows["width"].fillna(0).astype(int).to_numpy() if "width" in rows else np.zeros(len(rows), int)
    h = rows["height"].fillna(0).astype(int).to_numpy() if "height" in rows else np.zeros(len(rows), int)
    native = np.maximum(w, h)
    sides = [int(min(QUALITY_SIDE, m)) if m > 0 else QUALITY_SIDE for m in native]
    cell = 2 + THUMB_SIDE * THUMB_SIDE  # height, width, then the pixels row by row

    def compute() -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((len(paths), len(columns)), dtype=np.float64)
        packed = np.zeros((len(paths), cell), dtype=np.uint8)
        done = 0
        with ThreadPoolExecutor(max_workers=default_workers()) as pool:
            for i, (m, t) in enumerate(pool.map(_measure_one, paths, sides)):
                out[i] = [m[c] for c in columns]
                packed[i, 0], packed[i, 1] = t.shape
                packed[i, 2:2 + t.size] = t.ravel()
                done += 1
                if progress is not None and (done % 256 == 0 or done == len(paths)):
                    progress("Measuring photo quality", done, len(paths))
        return out, packed

    with cache.lock(parts):  # one process computes; a concurrent audit waits and reads
        measures = cache.get(parts) if hit else None
        packed = cache.get(thumb_parts) if hit else None
        if measures is None or packed is None:
            measures, packed = compute()
            cache.put(parts, measures)
            cache.put(thumb_parts, packed)
            hit = False
    measures = np.asarray(measures, dtype=np.float64).reshape(len(paths), len(columns))
    packed = np.asarray(packed).reshape(len(paths), cell)
    thumbs = [packed[i, 2:2 + int(packed[i, 0]) * int(packed[i, 1])].reshape(int(packed[i, 0]), int(packed[i, 1]))
              for i in range(len(paths))]
    scales = np.array([max(t.shape) / m if m > 0 else 1.0 for t, m in zip(thumbs, native)], dtype=np.float64)
    return pd.DataFrame(measures, columns=columns), thumbs, scales, hit


# ------------------------------------------------------------------ the audit
def _decisions(ws: Workspace, name: str) -> dict[str, str]:
    from tlcore.datasets import current_overrides, load_overrides

    return {r: d.action for r, d in current_overrides(load_overrides(ws, name)).items()}


def _label_audit(rows: pd.DataFrame, feats: np.ndarray, class_names: list[str], spec: AuditSpec,
                 progress: Progress | None) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    lookup = {c: i for i, c in enumerate(class_names)}
    y = rows["label"].map(lookup).to_numpy(dtype=np.int64)
    m = len(class_names)
    probs, info = out_of_fold_probabilities(
        feats, y, num_classes=m, folds=spec.folds, seed=spec.seed, dims=spec.dims,
        progress=(lambda d, t: progress("Label audit: cross-validated regression", d, t)) if progress else None)
    joint = confident_joint(y, probs, num_classes=m)
    q = calibrate_joint(joint, np.bincount(y, minlength=m))
    issues = find_label_issues(y, probs, method=spec.method, num_classes=m,  # type: ignore[arg-type]
                               out_of_class=spec.out_of_class)
    self_conf = label_quality_scores(y, probs, method="self_confidence")
    margin = label_quality_scores(y, probs, method="normalized_margin")
    score = self_conf if spec.ranking == "self_confidence" else margin
    suggested = np.asarray(class_names, dtype=object)[suggested_labels(y, probs)]
    table = pd.DataFrame({
        "relpath": rows["relpath"].astype(str).to_numpy(),
        "path": rows["path"].astype(str).to_numpy(),
        "split": rows["split"].astype(str).to_numpy(),
        "label": rows["label"].astype(str).to_numpy(),
        "suggested": suggested,
        "self_confidence": self_conf,
        "normalized_margin": margin,
        "score": score,
        "issue": issues,
    })
    # Flagged images first, each group by score (lowest = most suspicious).
    order = np.lexsort((table["relpath"].to_numpy(), score, ~issues))
    table = table.iloc[order].reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    probs = probs[order]
    n = len(y)
    summary = {
        "audited": int(n),
        "issues": int(issues.sum()),
        "estimated_errors": int(round(n * (1.0 - float(np.trace(q))))),
        "out_of_class": spec.out_of_class,
        "method": spec.method,
        "ranking": spec.ranking,
        "oof": info,
        "joint": joint.tolist(),
        "calibrated_joint": np.round(q, 6).tolist(),
        "confused_pairs": confused_pairs(joint, class_names),
    }
    return table, probs.astype(np.float32), summary


def _pair_table(rows: pd.DataFrame, feats: np.ndarray, thumbs: list[np.ndarray], scales: np.ndarray,
                hashes: np.ndarray, spec: AuditSpec) -> pd.DataFrame:
    raw = near_duplicate_pairs(thumbs, scales, features=feats, hashes=hashes if spec.hamming >= 0 else None,
                               neighbors=spec.neighbors, hamming=spec.hamming,
                               floor=min(spec.similarity, spec.pairs_similarity))
    i, j = raw["i"].to_numpy(), raw["j"].to_numpy()
    rel = rows["relpath"].astype(str).to_numpy()
    lab = rows["label"].astype(str).to_numpy()
    spl = rows["split"].astype(str).to_numpy()
    out = pd.DataFrame({"relpath_a": rel[i], "relpath_b": rel[j], "label_a": lab[i], "label_b": lab[j],
                        "split_a": spl[i], "split_b": spl[j], "similarity": raw["similarity"].to_numpy(),
                        "cosine": raw["cosine"].to_numpy(), "hamming": raw["hamming"].to_numpy(), "i": i, "j": j})
    out["near_duplicate"] = out["similarity"] >= spec.similarity
    out["kind"] = np.where(out["split_a"] != out["split_b"], "leakage",
                           np.where(out["label_a"] != out["label_b"], "cross_class", "within_class"))
    groups = group_pairs(len(rows), out[out["near_duplicate"]])
    out["group"] = np.where(out["near_duplicate"], groups[i], -1)
    return out


def audit_dataset(ws: Workspace, name: str, spec: AuditSpec | None = None, *, progress: Progress | None = None,
                  save: bool = True) -> AuditResult:
    """Audit ``name``'s labels, near-duplicates and photo quality (see the module docstring).

    Args:
        ws: the workspace.
        name: a registered dataset.
        spec: what to audit and the thresholds. Defaults to ``AuditSpec()``.
        progress: ``progress(text, done, total)`` while features and measures are computed.
        save: write the result folder (and, with ``spec.group_split``, the near-duplicate groups
            the split keeps together). Defaults to True.

    Returns:
        The ``AuditResult``.

    Raises:
        DatasetError: fewer than two classes in the audited splits, or a class with fewer images than
            folds (the message says which and what to do).
        ConfigError: a bad spec, an unreadable override manifest.
        ImageDecodeError: an image changed since the last scan (rescan the dataset).
    """
    from tlcore.datasets import dataset_splits, load_index, save_split_groups

    spec = spec or AuditSpec()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []
    ws.get_dataset(name)
    eff = dataset_splits(ws, name)
    report = dict(eff.attrs.get("overrides") or {})
    eff = eff[eff["split"] != ""].drop_duplicates("relpath").sort_values("relpath", kind="stable")
    eff = eff.reset_index(drop=True)
    if report.get("missing"):
        notes.append(f"{len(report['missing'])} decision(s) of the override manifest name files that are no longer "
                     "in the dataset; they were skipped.")
    class_names = sorted(eff["label"].astype(str).unique().tolist())
    audited = eff[eff["split"].isin(spec.splits)].reset_index(drop=True)
    if len(audited) == 0:
        raise DatasetError("The splits chosen for the label audit hold no images.",
                           received=f"splits {spec.splits} of dataset {name!r}",
                           fix="Audit the train and val splits (the default), or give the split more images.")
    lookup = {c: i for i, c in enumerate(class_names)}
    check_foldable(audited["label"].map(lookup).to_numpy(dtype=np.int64), num_classes=len(class_names),
                   folds=spec.folds, class_names=class_names,
                   where=f"in the {' and '.join(spec.splits)} split{'s' if len(spec.splits) > 1 else ''}")
    # Features and measures are cached for the scanned images, whatever the decisions.
    raw = load_index(ws, name)
    raw = raw[raw["usable"].astype(bool)] if "usable" in raw else raw
    raw = raw.drop_duplicates("relpath").sort_values("relpath", kind="stable").reset_index(drop=True)
    pos_of = pd.Series(np.arange(len(raw)), index=raw["relpath"].astype(str))
    timings["index"] = time.perf_counter() - t0

    t = time.perf_counter()
    feats_all, feats_cached = _features(ws, raw, spec, progress, notes)
    timings["features"] = time.perf_counter() - t
    t = time.perf_counter()
    stats_all, thumbs_all, scales_all, stats_cached = _image_stats(ws, raw, progress)
    timings["image_stats"] = time.perf_counter() - t

    pos = pos_of.loc[eff["relpath"].astype(str)].to_numpy()
    pos_audit = pos_of.loc[audited["relpath"].astype(str)].to_numpy()
    t = time.perf_counter()
    labels, probs, label_summary = _label_audit(audited, feats_all[pos_audit], class_names, spec, progress)
    timings["label_audit"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = stats_all.iloc[pos].reset_index(drop=True)
    hashes = join_hash(stats["phash_hi"].to_numpy(), stats["phash_lo"].to_numpy())
    pairs = _pair_table(eff, feats_all[pos], [thumbs_all[k] for k in pos], scales_all[pos], hashes, spec)
    near = pairs[pairs["near_duplicate"]]
    group_members: dict[int, list[str]] = {}
    for g, a, b in zip(near["group"], near["relpath_a"], near["relpath_b"]):
        group_members.setdefault(int(g), []).extend([a, b])
    groups = [sorted(set(v)) for v in group_members.values()]
    saved_groups = False
    after = eff
    if save and spec.group_split:
        save_split_groups(ws, name, groups, source={"audit": "pending", "similarity": spec.similarity, "at": _now()})
        saved_groups = True
        after = dataset_splits(ws, name)
    split_after = pd.Series(after["split"].astype(str).to_numpy(), index=after["relpath"].astype(str))
    pairs["leakage_after"] = (pairs["kind"] == "leakage") & (
        pairs["relpath_a"].map(split_after).to_numpy() != pairs["relpath_b"].map(split_after).to_numpy())
    pairs = pairs.drop(columns=["i", "j"])
    timings["near_duplicates"] = time.perf_counter() - t

    t = time.perf_counter()
    flags = quality_flags(stats, spec.quality_thresholds())
    quality = pd.concat([eff[["relpath", "path", "split", "label"]].astype(str).reset_index(drop=True),
                         stats[list(MEASURES)], flags.reset_index(drop=True)], axis=1)
    timings["quality"] = time.perf_counter() - t

    near_now = pairs[pairs["near_duplicate"]]
    summary: dict[str, Any] = {
        "dataset": name,
        "created": _now(),
        "spec": spec.to_dict(),
        "class_names": class_names,
        "images": {"total": int(len(eff)), "audited": int(len(audited)),
                   "by_split": {s: int(n) for s, n in eff["split"].value_counts().sort_index().items()}},
        "labels": label_summary,
        "near_duplicates": {
            "pairs": int(len(near_now)),
            "pairs_saved": int(len(pairs)),
            "groups": int(len(groups)),
            "images_in_groups": int(sum(len(g) for g in groups)),
            "leakage": int((near_now["kind"] == "leakage").sum()),
            "leakage_after": int(near_now["leakage_after"].sum()),
            "cross_class": int((near_now["kind"] == "cross_class").sum()),
            "within_class": int((near_now["kind"] == "within_class").sum()),
            "split_groups_saved": saved_groups,
        },
        "quality": {"thresholds": dataclasses.asdict(spec.quality_thresholds()),
                    "counts": {f: int(flags[f].sum()) for f in QUALITY_FLAGS},
                    "flagged": int((flags["flags"] != "").sum())},
        "overrides": report,
        "cached": {"features": bool(feats_cached), "image_stats": bool(stats_cached)},
        "timings": timings,
        "notes": notes,
    }
    result = AuditResult(id=_new_id(), dataset=name, summary=summary, labels=labels, pairs=pairs, quality=quality,
                         probabilities=probs)
    summary["id"] = result.id
    summary["seconds"] = time.perf_counter() - t0
    _annotate(result, _decisions(ws, name))
    if save:
        result.folder = _save(ws, result)
        if saved_groups:
            save_split_groups(ws, name, groups, source={"audit": result.id, "similarity": spec.similarity,
                                                        "at": summary["created"]})
    return result


def _annotate(result: AuditResult, decisions: dict[str, str]) -> None:
    """Each image's current decision ("" for none) from the override manifest."""
    def look(col: pd.Series) -> np.ndarray:
        return col.astype(str).map(lambda r: decisions.get(r, "")).to_numpy(dtype=object)

    result.labels["decision"] = look(result.labels["relpath"])
    result.quality["decision"] = look(result.quality["relpath"])
    result.pairs["decision_a"] = look(result.pairs["relpath_a"])
    result.pairs["decision_b"] = look(result.pairs["relpath_b"])


# ------------------------------------------------------------------ saved audits
_TABLES = ("labels", "pairs", "quality")


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.reset_index(drop=True).to_parquet(buf, index=False)
    return buf.getvalue()


def _save(ws: Workspace, result: AuditResult) -> Path:
    """Write ``result``'s folder; the tables without the ``decision`` columns (read from the manifest on
    load) and without ``path`` (absolute: rebuilt from ``relpath`` on load, ``_with_paths``)."""
    target = audits_dir(ws, result.dataset) / result.id
    with atomic_directory(target) as tmp:
        for table in _TABLES:
            df = getattr(result, table)
            atomic_write_bytes(tmp / f"{table}.parquet", _parquet_bytes(df.drop(columns=[
                c for c in df.columns if c.startswith("decision") or c == "path"])))
        buf = io.BytesIO()
        np.save(buf, result.probabilities, allow_pickle=False)
        atomic_write_bytes(tmp / "probabilities.npy", buf.getvalue())
        atomic_write_json(tmp / "summary.json", _jsonable(result.summary))  # last: its presence marks a whole audit
    return target


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _with_paths(table: pd.DataFrame, dataset_folder: str | os.PathLike[str]) -> pd.DataFrame:
    """``table`` with its ``path`` column (right after ``relpath``) joined from ``relpath`` and the dataset's
    folder now, as ``load_index`` joins them; a ``path`` an older version saved is replaced: it named where
    the images were when the audit ran (another workspace, once the workspace is moved or copied)."""
    paths = os.path.join(str(dataset_folder), "") + table["relpath"].astype(str)
    if "path" in table:
        table = table.drop(columns=["path"])
    table.insert(int(table.columns.get_loc("relpath")) + 1, "path", paths.to_numpy(dtype=object))
    return table


def list_audits(ws: Workspace, name: str) -> list[dict[str, Any]]:
    """The summaries of ``name``'s saved audits, newest first (unreadable ones are skipped)."""
    ws.get_dataset(name)
    folder = audits_dir(ws, name)
    out = []
    if not folder.is_dir():
        return out
    for d in sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "jobs"),
                    key=lambda p: p.name, reverse=True):
        try:
            data = read_json(d / "summary.json", default=None)
        except TLCoreError:
            continue
        if isinstance(data, dict) and data.get("id") == d.name:
            out.append(data)
    return out


def load_audit(ws: Workspace, name: str, audit_id: str | None = None) -> AuditResult:
    """A saved audit (the newest when ``audit_id`` is None), with each image's current decision.

    Raises:
        NotFoundError: no audit (with that id) exists.
        WorkspaceError: its files are damaged.
    """
    from tlcore.errors import WorkspaceError

    audits = list_audits(ws, name)
    if audit_id is None:
        if not audits:
            raise NotFoundError(f"The dataset {name!r} has not been audited yet.", received=name,
                                fix=f"Run 'python -m tlcore datasets audit {name}' (or the Audit tab of the Datasets page).")
        summary = audits[0]
    else:
        found = [a for a in audits if a.get("id") == audit_id]
        if not found:
            raise NotFoundError("No audit of this dataset has that id.", received=audit_id,
                                fix=f"See the audits with 'python -m tlcore datasets audit {name} --list'.")
        summary = found[0]
    folder = audits_dir(ws, name) / summary["id"]
    damaged = dict(received=str(folder),
                   fix=f"Delete that folder and audit again ('python -m tlcore datasets audit {name}').")
    try:
        tables = {t: pd.read_parquet(folder / f"{t}.parquet") for t in _TABLES}
        probs = np.load(folder / "probabilities.npy", allow_pickle=False)
    except Exception as exc:  # pyarrow and numpy raise their own types for damaged files
        raise WorkspaceError("The saved audit is damaged.", **damaged) from exc
    if any("relpath" not in tables[t] for t in ("labels", "quality")):
        raise WorkspaceError("The saved audit is damaged: a table lacks its relpath column.", **damaged)
    dataset_folder = ws.get_dataset(name).path
    for t in ("labels", "quality"):
        tables[t] = _with_paths(tables[t], dataset_folder)
    result = AuditResult(id=summary["id"], dataset=name, summary=summary, probabilities=probs, folder=folder, **tables)
    _annotate(result, _decisions(ws, name))
    return result
