"""Typed, validated specs that round-trip to dict and YAML.

The same spec drives the CLI, the workers and the pages. Each spec is a frozen
dataclass; ``from_dict`` validates and refuses unknown keys with a message that
lists the known ones.

- ``Spec``: the mixin (``to_dict``/``from_dict``, ``to_yaml``/``from_yaml``,
  ``fields_from_yaml``: a file's fields to merge with others before validating,
  ``validate``) that the other specs share: ``tlcore.augment.AugmentSpec`` and
  ``tlcore.search.spec.StudySpec`` are built on it too;
- ``SplitSpec``: train/val/test fractions and seed (``tlcore.datasets`` saves one
  per dataset);
- ``TrainSpec``: one run, every field documented on the class; what
  ``tlcore.trainer.train`` takes, what ``python -m tlcore train --spec`` reads and
  what a run folder's ``spec.yaml`` holds;
- ``METHODS``, ``RESIZE_MODES``, ``LR_SCHEDULES``: the allowed names;
  ``RESIZE_RULES``: each resize mode with one line saying what it does (the
  owner of the modes: everything else imports them from here).

Example:

>>> spec = SplitSpec(val_fraction=0.2, test_fraction=0.1, seed=7)
>>> SplitSpec.from_yaml(spec.to_yaml()) == spec
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import yaml

from tlcore import _yaml
from tlcore.errors import ConfigError

__all__ = ["Spec", "SplitSpec", "TrainSpec", "METHODS", "RESIZE_MODES", "RESIZE_RULES", "LR_SCHEDULES",
           "BATCHNORM_MODES", "HEAD_INITS"]

S = TypeVar("S", bound="Spec")


class Spec:
    """Mixin for dataclass specs: dict/YAML round-trip with validation."""

    def validate(self) -> None:  # overridden where there is something to check
        return None

    def __post_init__(self) -> None:
        self.validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def _mapping(cls, data: Any) -> dict[str, Any]:
        """``data`` as a new dict of fields ({} for None); anything but a mapping is a ``ConfigError``."""
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"A {cls.__name__} must be a mapping of field: value pairs.",
                              received=type(data).__name__, fix="Write one 'field: value' per line.")
        return dict(data)

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any] | None) -> S:
        data = cls._mapping(data)
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"Unknown {cls.__name__} field(s): {', '.join(unknown)}.",
                received=unknown,
                fix=f"Known fields: {', '.join(sorted(known))}.",
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"Invalid {cls.__name__}: {exc}.") from exc

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def _parse_yaml(cls, text: str) -> Any:
        try:
            return _yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"The {cls.__name__} is not valid YAML.", received=_yaml.error_line(exc),
                              fix="Fix the syntax: one 'field: value' per line.") from exc

    @classmethod
    def fields_from_yaml(cls, text: str) -> dict[str, Any]:
        """The ``field: value`` pairs of a YAML spec, not validated yet: for a caller that merges other
        values in before ``from_dict`` (the CLI's flags override a ``--spec`` file's fields, and may give
        what the file leaves out, such as the dataset).

        Raises:
            ConfigError: ``text`` is not valid YAML, or not a mapping.
        """
        return cls._mapping(cls._parse_yaml(text))

    @classmethod
    def from_yaml(cls: type[S], text: str) -> S:
        return cls.from_dict(cls._parse_yaml(text))


def _check_fraction(name: str, value: Any, *, lo: float = 0.0, hi: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) < hi:
        raise ConfigError(f"{name} must be a number in [{lo}, {hi}).", received=f"{name}={value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class SplitSpec(Spec):
    """How a dataset is split into train/val/test.

    Args:
        val_fraction: share of each class for validation. Defaults to 0.15.
        test_fraction: share of each class for testing. Defaults to 0.15.
        seed: changes which images land where. Defaults to 0.
    """

    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0

    def validate(self) -> None:
        v = _check_fraction("val_fraction", self.val_fraction)
        t = _check_fraction("test_fraction", self.test_fraction)
        if v + t >= 1.0:
            raise ConfigError(
                "val_fraction + test_fraction must leave something to train on.",
                received=f"val_fraction={v}, test_fraction={t}",
                fix="Keep their sum below 1 (e.g. 0.15 and 0.15).",
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError("seed must be an integer.", received=f"seed={self.seed!r}")


METHODS = ("feature_extraction", "fine_tune", "two_phase")
RECIPE_UNFROZEN = 1 / 3  # the classic recipe fine-tunes the last third of the backbone's blocks


def recipe_depth(num_blocks: int) -> int:
    """The freeze depth of the classic recipe, the last third of ``num_blocks`` blocks trained: 12 of
    EfficientNet-Lite0's 18. A fine_tune or two_phase run that names no depth trains at it."""
    return round(num_blocks * (1 - RECIPE_UNFROZEN))
RESIZE_RULES: dict[str, str] = {
    "pad": "keep the aspect ratio, fit the longer side to S and centre the image on a black S×S canvas (letterbox)",
    "crop": "keep the aspect ratio, fit the shorter side to S and cut out the centre S×S square",
    "stretch": "resize to S×S, ignoring the aspect ratio",
}
"""What each ``resize_mode`` does to an image before it enters the model (bilinear, antialiased)."""
RESIZE_MODES = tuple(RESIZE_RULES)  # ("pad", "crop", "stretch"); implemented by tlcore.datasets.resize_to
LR_SCHEDULES = ("constant", "cosine")
BATCHNORM_MODES = ("train", "frozen")  # tlcore.model.Classifier.set_freeze_depth
HEAD_INITS = ("linear_probe", "random")
DEFAULT_TOP_K = 3  # classes a prediction shows per image unless asked (tlcore.predict, the CLI, the Predict page)


def check_fractions(name: str, value: Any) -> list[float]:
    """A non-empty, strictly increasing list of data fractions, each in (0, 1)."""
    if (not isinstance(value, (list, tuple)) or not value
            or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1 for f in value)
            or any(b <= a for a, b in zip(value, value[1:]))):
        raise ConfigError(f"{name} must be increasing data fractions, each in (0, 1).",
                          received=f"{name}={value!r}", fix=f"For example {name}: [0.111, 0.333], or null for none.")
    return [float(f) for f in value]


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ConfigError(f"{name} must be an integer {bound}.", received=f"{name}={value!r}")
    return value


def _check_float(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        v = float(value)
        ok = (v > lo if lo_open else v >= lo) and v <= hi
    if not ok:
        lb = "(" if lo_open else "["
        raise ConfigError(f"{name} must be a number in {lb}{lo}, {hi}].", received=f"{name}={value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class TrainSpec(Spec):
    """One transfer-learning run.

    Args:
        dataset: a registered dataset name. Required.
        backbone: a backbone name from ``tlcore.backbones.list_backbones()``.
            Defaults to "efficientnet_lite0".
        weights: "imagenet", a path to a weights file, or None for random (tests).
            Defaults to "imagenet".
        image_size: side of the square input in pixels. Defaults to 224.
        resize_mode: how non-square images become square: "pad" (keep aspect,
            letterbox), "crop" (centre crop) or "stretch". Defaults to "pad".
        method: "feature_extraction" (whole backbone frozen), "fine_tune"
            (blocks [0, freeze_depth) frozen) or "two_phase" (head first, then
            unfreeze down to freeze_depth). Defaults to "feature_extraction".
        freeze_depth: number of backbone blocks kept frozen (feature_extraction
            freezes all, whatever it says). Defaults to None: all blocks for
            feature_extraction, the classic recipe's depth (``recipe_depth``: the
            last third trained) for fine_tune and two_phase.
        learning_rate: Adam learning rate (phase 1 for two_phase). Defaults to 1e-3.
        fine_tune_factor: two_phase's phase-2 learning rate is
            ``learning_rate * fine_tune_factor``. Defaults to 0.1.
        lr_schedule: "constant", or "cosine" (each phase decays its rate to 0 along a
            half cosine over its epochs). Defaults to "constant".
        epochs: total epochs (both phases together for two_phase). Defaults to 5.
        head_epochs: two_phase's phase-1 epochs. Defaults to half of ``epochs``.
        batch_size: Defaults to 32.
        dropout: dropout before the dense head. Defaults to 0.2.
        label_smoothing: Defaults to 0.0.
        augment: a preset or saved pipeline name, or None. Defaults to None.
        aug_copies: augmented copies cached per image for the frozen part (K);
            0 means exact on-the-fly augmentation through the frozen part. Defaults to 4.
        feature_cache: cache the frozen part's output. Defaults to True.
        class_weights: weight classes inversely to their frequency. Defaults to False.
        early_stopping: stop after this many epochs without val improvement; 0 = off. Defaults to 0.
        batchnorm: BatchNorm in the unfrozen blocks while training: "train" (batch
            statistics, moving averages updated, as a plain Keras loop does) or "frozen"
            (moving statistics kept; collapses at large learning rates). Frozen blocks
            always keep theirs. Defaults to "train".
        head_init: "linear_probe" (start the head from a softmax regression fitted to
            convergence on the cached full-depth features, shared by every run on the
            same data, backbone, size, resize rule and augmentation; two_phase then
            skips its own head phase) or "random". Defaults to "linear_probe".
        warmup_epochs: epochs over which the learning rate rises linearly from ~0 at the
            start of each phase that unfreezes backbone blocks; 0 = none. Defaults to 0.
        subset_rungs: data fractions, increasing, each below 1, for one epoch each
            before the full-data epochs: the successive-halving rungs of a search
            (nested stratified subsets, ``tlcore.pipeline.nested_subset``); None = none.
            Defaults to None.
        divergence_guard: stop the run with ``TrainingDiverged`` when the loss is not
            finite, or when validation accuracy is still at chance after the first epoch.
            Defaults to True.
        seed: Defaults to 0.
        val_fraction, test_fraction, split_seed: the split (see ``SplitSpec``);
            None uses the dataset's saved split settings.
    """

    dataset: str = ""
    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    image_size: int = 224
    resize_mode: str = "pad"
    method: str = "feature_extraction"
    freeze_depth: int | None = None
    learning_rate: float = 1e-3
    fine_tune_factor: float = 0.1
    lr_schedule: str = "constant"
    epochs: int = 5
    head_epochs: int | None = None
    batch_size: int = 32
    dropout: float = 0.2
    label_smoothing: float = 0.0
    augment: str | None = None
    aug_copies: int = 4
    feature_cache: bool = True
    class_weights: bool = False
    early_stopping: int = 0
    batchnorm: str = "train"
    head_init: str = "linear_probe"
    warmup_epochs: float = 0.0
    subset_rungs: list[float] | None = None
    divergence_guard: bool = True
    seed: int = 0
    val_fraction: float | None = None
    test_fraction: float | None = None
    split_seed: int | None = None

    def validate(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError("A training run needs a dataset.", received=f"dataset={self.dataset!r}",
                              fix="Give the name of a registered dataset (python -m tlcore datasets list).")
        if self.method not in METHODS:
            raise ConfigError("Unknown training method.", received=f"method={self.method!r}",
                              fix=f"Use one of: {', '.join(METHODS)}.")
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError("Unknown resize mode.", received=f"resize_mode={self.resize_mode!r}",
                              fix=f"Use one of: {', '.join(RESIZE_MODES)}.")
        _check_int("image_size", self.image_size, 32, 1024)
        if self.freeze_depth is not None:
            _check_int("freeze_depth", self.freeze_depth, 0)
        _check_float("learning_rate", self.learning_rate, 0.0, 1.0, lo_open=True)
        _check_float("fine_tune_factor", self.fine_tune_factor, 0.0, 1.0, lo_open=True)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError("Unknown learning-rate schedule.", received=f"lr_schedule={self.lr_schedule!r}",
                              fix=f"Use one of: {', '.join(LR_SCHEDULES)}.")
        _check_int("epochs", self.epochs, 1, 10_000)
        if self.method == "two_phase" and self.epochs < 2:
            raise ConfigError("two_phase needs at least 2 epochs (one per phase).", received=f"epochs={self.epochs}")
        if self.head_epochs is not None:
            if self.method == "two_phase":  # phase 2 needs an epoch too
                _check_int("head_epochs", self.head_epochs, 1, self.epochs - 1)
            else:
                _check_int("head_epochs", self.head_epochs, 1, self.epochs)
        _check_int("batch_size", self.batch_size, 1, 4096)
        _check_float("dropout", self.dropout, 0.0, 0.95)
        _check_float("label_smoothing", self.label_smoothing, 0.0, 0.5)
        _check_int("aug_copies", self.aug_copies, 0, 64)
        _check_int("early_stopping", self.early_stopping, 0, 1000)
        for name, allowed in (("batchnorm", BATCHNORM_MODES), ("head_init", HEAD_INITS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"Unknown {name}.", received=f"{name}={getattr(self, name)!r}",
                                  fix=f"Use one of: {', '.join(allowed)}.")
        _check_float("warmup_epochs", self.warmup_epochs, 0.0, 1000.0)
        if self.warmup_epochs >= self.epochs:
            raise ConfigError("The learning-rate warm-up must be shorter than the run.",
                              received=f"warmup_epochs={self.warmup_epochs}, epochs={self.epochs}",
                              fix=f"Use fewer warm-up epochs than epochs (e.g. {min(1.0, self.epochs / 2):g}), or 0.")
        if self.subset_rungs is not None:
            object.__setattr__(self, "subset_rungs", check_fractions("subset_rungs", self.subset_rungs))
        if not isinstance(self.divergence_guard, bool):
            raise ConfigError("divergence_guard must be true or false.",
                              received=f"divergence_guard={self.divergence_guard!r}")
        _check_int("seed", self.seed, 0)
        if self.val_fraction is not None or self.test_fraction is not None or self.split_seed is not None:
            self.split_spec(SplitSpec())  # validates the combination

    def split_spec(self, default: SplitSpec) -> SplitSpec:
        """The split to use: this spec's fields where given, else ``default``'s."""
        return SplitSpec(
            val_fraction=default.val_fraction if self.val_fraction is None else self.val_fraction,
            test_fraction=default.test_fraction if self.test_fraction is None else self.test_fraction,
            seed=default.seed if self.split_seed is None else self.split_seed,
        )

    @property
    def phase1_epochs(self) -> int:
        """Epochs of the head-only phase for two_phase."""
        return self.head_epochs if self.head_epochs is not None else max(1, self.epochs // 2)
