"""The study spec: what a search trains, over which ranges, within which budget.

A ``StudySpec`` is stored inside the Optuna study (a study user attribute), so a
worker needs only the study's name and storage to run its trials. Ranges are
two-element lists ``[low, high]`` (inclusive); ``None`` for an optional range
means "not searched", and the fixed value beside it is used.

It is a ``tlcore.config.Spec``: the YAML a user writes for ``search create`` (or
uploads on the Search page) is its dict form, validated field by field, unknown
fields refused. ``suggest(trial)`` asks an Optuna trial for the searched
parameters; ``train_spec(params)`` turns them into the ``TrainSpec`` that
``tlcore.trainer.train`` runs. Every field is documented on ``StudySpec``.

Example:

>>> spec = StudySpec(name="pets", dataset="pets", freeze_depth=[9, 18], learning_rate=[1e-4, 1e-2])
>>> StudySpec.from_yaml(spec.to_yaml()) == spec
True
>>> spec.train_spec({"freeze_depth": 12, "learning_rate": 3e-4}).freeze_depth
12
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tlcore.config import (
    METHODS,
    RESIZE_MODES,
    Spec,
    TrainSpec,
    _check_float,
    _check_int,
    check_fractions,
)
from tlcore.errors import ConfigError

__all__ = ["StudySpec", "SAMPLERS", "PRUNERS", "OBJECTIVES", "SPEC_VERSION", "LEGACY_DEFAULTS", "VERSION_DEFAULTS",
           "SCOUT_DEFAULTS"]

SAMPLERS = ("tpe", "random")
PRUNERS = ("successive_halving", "median", "hyperband", "none")
SPEC_VERSION = 5
# What a stored spec without a version (made before version 2) meant by the fields it lacks:
# old studies resume with the training they started with.
LEGACY_DEFAULTS = {"version": 1, "pruner": "median", "head_init": "random", "batchnorm": "frozen",
                   "subset_rungs": None, "fe_epochs": None, "probe_first": False, "divergence_guard": False,
                   "lr_ceiling_at_depth0": None, "scout": None, "lr_schedule": "constant", "recipe_trial": False}
# Fields added by each later version, with what a stored spec of an earlier version meant by them.
VERSION_DEFAULTS = {3: {"lr_ceiling_at_depth0": None, "scout": None}, 4: {"lr_schedule": "constant"},
                    5: {"recipe_trial": False}}
# What a study's scout does unless the spec says otherwise (``scout: {}`` takes all of these).
# Seeding is off by default: on Fashion-MNIST the scores ranked the fine-tuning depths the wrong way
# round (Kendall tau -0.44) and a seeded search never reached the unseeded one's best (BENCHMARKS.md).
SCOUT_DEFAULTS = {"images": 2000, "seed_trials": 0, "max_seconds": 60.0}
OBJECTIVES = ("val_accuracy", "val_loss")
# The ranges the Search page offers when the fine-tune factor or the dropout is searched, and the
# examples the spec's messages give.
FINE_TUNE_FACTOR_RANGE = (0.01, 0.5)
DROPOUT_RANGE = (0.1, 0.5)


def _range(name: str, value: Any, *, lo: float, hi: float, integer: bool = False,
           positive: bool = False, example: tuple[float, float] | None = None) -> list[Any]:
    """Check a ``[low, high]`` range and return it as a list. ``example``: a range the message may
    suggest (default ``[lo, hi]``, which a ``positive`` range would refuse)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        a, b = example or (lo, hi)
        raise ConfigError(f"{name} must be a range [low, high].", received=f"{name}={value!r}",
                          fix=f"For example {name}: [{a}, {b}].")
    a, b = value
    if integer:
        a, b = _check_int(f"{name}[0]", a, int(lo), int(hi)), _check_int(f"{name}[1]", b, int(lo), int(hi))
    else:
        a = _check_float(f"{name}[0]", a, lo, hi, lo_open=positive)
        b = _check_float(f"{name}[1]", b, lo, hi, lo_open=positive)
    if a > b:
        raise ConfigError(f"{name}: the low end is above the high end.", received=f"{name}={value!r}",
                          fix=f"Write it as [{b}, {a}].")
    return [a, b]


def _scout_options(value: Any) -> dict[str, Any]:
    """Check ``scout:`` and fill in its defaults."""
    if not isinstance(value, dict):
        raise ConfigError("scout must be a mapping, or null for no scout.", received=f"scout={value!r}",
                          fix="For example scout: {images: 2000, seed_trials: 3}.")
    unknown = sorted(set(value) - set(SCOUT_DEFAULTS))
    if unknown:
        raise ConfigError(f"Unknown scout option: {', '.join(map(str, unknown))}.", received=f"scout={value!r}",
                          fix=f"Use: {', '.join(SCOUT_DEFAULTS)}.")
    out = {**SCOUT_DEFAULTS, **value}
    out["images"] = _check_int("scout.images", out["images"], 2, 1_000_000)
    out["seed_trials"] = _check_int("scout.seed_trials", out["seed_trials"], 0, 100)
    if out["max_seconds"] is not None:
        out["max_seconds"] = _check_float("scout.max_seconds", out["max_seconds"], 0.0, 1e6, lo_open=True)
    return out


def _names(name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name} must be a non-empty list.", received=f"{name}={value!r}",
                          fix=f"Choose from: {', '.join(allowed)}.")
    bad = [v for v in value if v not in allowed]
    if bad:
        raise ConfigError(f"Unknown {name}: {', '.join(map(str, bad))}.", received=f"{name}={value!r}",
                          fix=f"Choose from: {', '.join(allowed)}.")
    return list(dict.fromkeys(value))


@dataclasses.dataclass(frozen=True)
class StudySpec(Spec):
    """A hyper-parameter search over transfer-learning runs.

    Args:
        name: the study's name (letters, digits, '.', '_', '-'). Required.
        dataset: a registered dataset name. Required.
        augment: a preset or saved augmentation pipeline, or None.
        aug_copies: cached augmented copies per image (see ``TrainSpec``). Defaults to 2.
        backbones: backbones to choose from (a categorical parameter when more than one).
            Defaults to ["efficientnet_lite0"].
        weights: "imagenet", a weights file, or None (random; for tests). Defaults to "imagenet".
        image_size: Defaults to 128.
        resize_mode: "pad", "crop" or "stretch". Defaults to "pad".
        methods: training methods to choose from. Defaults to ["fine_tune"]; fine_tune at
            the backbone's full depth is feature extraction.
        freeze_depth: range of frozen blocks searched, [low, high]; None searches every
            depth of the backbone (0 to all blocks). Ignored by feature_extraction.
        head_init, batchnorm, warmup_epochs: as in ``TrainSpec``. Default to
            "linear_probe", "train" and 0: every trial's head starts from the shared
            linear probe, and unfrozen BatchNorm trains on batch statistics.
        subset_rungs: successive halving on nested data subsets: a fine-tuning trial first
            trains one epoch on each of these fractions of the training split, and after
            each the pruner keeps it only if it ranks in the best ``1 / reduction_factor``
            of the trials judged at that rung; the survivors go on to ``epochs`` full-data
            epochs, from where they were. Used with ``pruner: successive_halving``; a small
            study uses only the first ``floor(log_rf(n_trials))`` rungs. Defaults to
            [0.111, 0.333]. None = no rungs.
        reduction_factor: 1 in this many trials is promoted at each rung. Defaults to 3.
        fe_epochs: epochs at most of a feature-extraction trial (the whole backbone frozen:
            about a second an epoch on cached features), with early stopping after 3
            epochs without improvement. Defaults to 20. None = ``epochs``, no early stop.
        divergence_guard: stop a trial whose loss goes non-finite or whose validation
            accuracy is at chance, and record it as diverged (see ``TrainSpec``). Defaults to True.
        probe_first: the study's first trial is feature extraction from the linear probe,
            a usable model within the first minute. Defaults to True.
        recipe_trial: the next trial is the classic fine-tuning recipe instead of a random
            draw: the last third of the backbone's blocks unfrozen (``recipe_depth``), at the
            geometric middle of that depth's learning-rate range (``search.study.recipe_trial_params``).
            A strong fine-tuned model early, at a shallow trial's cost, from which the sampler
            goes on (a random first draw can be a depth-0 trial that costs 3-5x as much).
            Defaults to True.
        scout: rank the (backbone, freeze depth) pairs with ``tlcore.scout`` before sampling,
            and make the best ``seed_trials`` of them the study's next trials (after the
            probe and recipe trials; each at the recipe's learning rate for its depth; 0 = scout, record and
            measure, but seed nothing). ``images``: at most this many
            training images are scored; ``max_seconds``: the scout runs only when its
            estimated cost (``tlcore.scout.scout_cost_for``) is below this (None: always).
            The first worker runs it once and stores it in the study (``tl_scout``); the
            Results page then shows how well each score ranked the trained trials. Defaults to
            ``{"images": 2000, "seed_trials": 0, "max_seconds": 60}``: the scout is recorded and
            its agreement with the trials measured, but it seeds nothing unless asked (seeding
            was measured not to help on Fashion-MNIST: BENCHMARKS.md, issue 12).
            None = no scout.
        learning_rate: range, searched on a log scale. Defaults to [1e-4, 1e-2].
        lr_ceiling_at_depth0: a depth-aware ceiling on a fine_tune trial's learning rate: at
            freeze depth 0 (everything unfrozen) the range ends at this fraction of
            ``learning_rate``'s high end, rising log-linearly with the depth to the high end
            itself at full depth (feature extraction). The more of the backbone a trial
            unfreezes, the lower the rate it survives on a small dataset (``BENCHMARKS.md``:
            every collapsed trial unfroze nearly all of it at >= 6.5e-3). Defaults to 0.1
            (1e-3 at depth 0, ~3e-3 at half depth for the default range). None = no ceiling.
        fine_tune_factor: range (log scale) for two_phase's phase-2 factor, or None to fix
            it at ``TrainSpec``'s default.
        dropout: range, or None to fix it at ``TrainSpec``'s default (0.2).
        batch_sizes: batch sizes to choose from, or None to fix ``batch_size``.
        batch_size: Defaults to 32.
        epochs: epochs per trial (both phases together for two_phase). Defaults to 3.
        head_epochs: two_phase's head-only epochs; None = half of ``epochs``.
        lr_schedule: "cosine" (default): each trial's rate decays to 0 over its epochs
            (rungs included), along a half cosine; or "constant" (``TrainSpec``'s default).
            Measured on Fashion-MNIST (``bench/bench_schedule.py``): the same trial scored
            0.3-3.6 points higher on held-out images with the decay, for no extra time.
        label_smoothing, class_weights, early_stopping: as in ``TrainSpec``.
        n_trials: finished trials (complete or pruned) the study stops at, counted
            across all workers. Defaults to 20. None = no trial limit (then give a time limit).
        timeout_minutes: no new trial starts this long after the study's first trial. Optional.
        objective: "val_accuracy" (maximised) or "val_loss" (minimised). Defaults to "val_accuracy".
        sampler: "tpe" (default) or "random"; seeded by ``seed``.
        pruner: "successive_halving" (default; see ``subset_rungs``), "median",
            "hyperband" or "none". It sees the objective after every epoch, with one
            epoch count rising across both phases of two_phase.
        pruner_warmup_epochs: epochs a trial always runs before it can be pruned. Defaults to 1.
        pruner_startup_trials: trials that finish before the median pruner prunes. Defaults to 3.
        seed: seeds the sampler and each trial's training. Defaults to 0.
        val_fraction, test_fraction, split_seed: the split; None uses the dataset's settings.
        version: the spec's format. Stored specs of an earlier version read the fields it lacked
            with ``VERSION_DEFAULTS``; those without one with
            ``LEGACY_DEFAULTS`` (``from_stored``).
    """

    name: str = ""
    dataset: str = ""
    augment: str | None = None
    aug_copies: int = 2
    backbones: list[str] = dataclasses.field(default_factory=lambda: ["efficientnet_lite0"])
    weights: str | None = "imagenet"
    image_size: int = 128
    resize_mode: str = "pad"
    methods: list[str] = dataclasses.field(default_factory=lambda: ["fine_tune"])
    freeze_depth: list[int] | None = None
    learning_rate: list[float] = dataclasses.field(default_factory=lambda: [1e-4, 1e-2])
    lr_ceiling_at_depth0: float | None = 0.1
    fine_tune_factor: list[float] | None = None
    dropout: list[float] | None = None
    batch_sizes: list[int] | None = None
    batch_size: int = 32
    epochs: int = 3
    head_epochs: int | None = None
    label_smoothing: float = 0.0
    lr_schedule: str = "cosine"
    class_weights: bool = False
    early_stopping: int = 0
    n_trials: int | None = 20
    timeout_minutes: float | None = None
    objective: str = "val_accuracy"
    sampler: str = "tpe"
    pruner: str = "successive_halving"
    pruner_warmup_epochs: int = 1
    pruner_startup_trials: int = 3
    head_init: str = "linear_probe"
    batchnorm: str = "train"
    warmup_epochs: float = 0.0
    subset_rungs: list[float] | None = dataclasses.field(default_factory=lambda: [0.111, 0.333])
    reduction_factor: int = 3
    fe_epochs: int | None = 20
    probe_first: bool = True
    recipe_trial: bool = True
    scout: dict[str, Any] | None = dataclasses.field(default_factory=lambda: dict(SCOUT_DEFAULTS))
    divergence_guard: bool = True
    seed: int = 0
    val_fraction: float | None = None
    test_fraction: float | None = None
    split_seed: int | None = None
    version: int = SPEC_VERSION

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> StudySpec:
        """A spec as stored in a study: one made by an earlier version keeps its old meaning."""
        if isinstance(data, dict):
            if "version" not in data:
                data = {**LEGACY_DEFAULTS, **data}
            elif isinstance(data["version"], int):
                for version, fields in VERSION_DEFAULTS.items():
                    if data["version"] < version:
                        data = {**fields, **data}
        return cls.from_dict(data)

    def validate(self) -> None:
        from tlcore import backbones as bb
        from tlcore.workspace import validate_name

        if self.name in ("", None):  # an empty spec file, or one without its name
            raise ConfigError("A study needs a name.", received=f"name={self.name!r}",
                              fix="Add a line such as 'name: my-study' (1-64 letters, digits, '.', '_' or '-').")
        validate_name(self.name, "study name")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError("A study needs a dataset.", received=f"dataset={self.dataset!r}",
                              fix="Give the name of a registered dataset (python -m tlcore datasets list).")
        fix = object.__setattr__  # frozen: normalise ranges and lists once, here
        fix(self, "backbones", _names("backbones", self.backbones, bb.list_backbones()))
        fix(self, "methods", _names("methods", self.methods, METHODS))
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError("Unknown resize mode.", received=f"resize_mode={self.resize_mode!r}",
                              fix=f"Use one of: {', '.join(RESIZE_MODES)}.")
        blocks = min(bb.get(b).num_blocks for b in self.backbones)
        if self.freeze_depth is not None:
            fix(self, "freeze_depth", _range("freeze_depth", self.freeze_depth, lo=0, hi=blocks, integer=True))
        fix(self, "learning_rate", _range("learning_rate", self.learning_rate, lo=0.0, hi=1.0, positive=True,
                                          example=(1e-4, 1e-2)))
        if self.lr_ceiling_at_depth0 is not None:
            _check_float("lr_ceiling_at_depth0", self.lr_ceiling_at_depth0, 0.0, 1.0, lo_open=True)
        if self.fine_tune_factor is not None:
            fix(self, "fine_tune_factor", _range("fine_tune_factor", self.fine_tune_factor, lo=0.0, hi=1.0,
                                                 positive=True, example=FINE_TUNE_FACTOR_RANGE))
        if self.dropout is not None:
            fix(self, "dropout", _range("dropout", self.dropout, lo=0.0, hi=0.95, example=DROPOUT_RANGE))
        if self.batch_sizes is not None:
            if not isinstance(self.batch_sizes, (list, tuple)) or not self.batch_sizes:
                raise ConfigError("batch_sizes must be a non-empty list of integers.",
                                  received=f"batch_sizes={self.batch_sizes!r}", fix="For example [16, 32, 64].")
            fix(self, "batch_sizes", sorted({_check_int("batch_sizes[]", b, 1, 4096) for b in self.batch_sizes}))
        if self.n_trials is None and self.timeout_minutes is None:
            raise ConfigError("A study needs a budget: a number of trials, a time limit, or both.",
                              received="n_trials=None, timeout_minutes=None", fix="Set n_trials (e.g. 20).")
        if self.n_trials is not None:
            _check_int("n_trials", self.n_trials, 1, 100_000)
        if self.timeout_minutes is not None:
            _check_float("timeout_minutes", self.timeout_minutes, 0.0, 1e6, lo_open=True)
        for name, allowed in (("objective", OBJECTIVES), ("sampler", SAMPLERS), ("pruner", PRUNERS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"Unknown {name}.", received=f"{name}={getattr(self, name)!r}",
                                  fix=f"Use one of: {', '.join(allowed)}.")
        _check_int("pruner_warmup_epochs", self.pruner_warmup_epochs, 0, 10_000)
        _check_int("pruner_startup_trials", self.pruner_startup_trials, 0, 10_000)
        _check_int("reduction_factor", self.reduction_factor, 2, 10)
        if self.subset_rungs is not None:
            fix(self, "subset_rungs", check_fractions("subset_rungs", self.subset_rungs))
        if self.fe_epochs is not None:
            _check_int("fe_epochs", self.fe_epochs, 1, 1000)
        if self.scout is not None:
            fix(self, "scout", _scout_options(self.scout))
        if not isinstance(self.probe_first, bool):
            raise ConfigError("probe_first must be true or false.", received=f"probe_first={self.probe_first!r}")
        if not isinstance(self.recipe_trial, bool):
            raise ConfigError("recipe_trial must be true or false.",
                              received=f"recipe_trial={self.recipe_trial!r}")
        _check_int("version", self.version, 1, SPEC_VERSION)

        # Everything else is checked by the TrainSpec of a representative trial.
        self.train_spec({})

    # ------------------------------------------------------------------ trials
    @property
    def direction(self) -> str:
        return "maximize" if self.objective == "val_accuracy" else "minimize"

    def rungs(self) -> list[float]:
        """The rungs a fine-tuning trial runs: ``subset_rungs`` trimmed to what ``n_trials`` can judge.

        Rung r promotes 1 in ``reduction_factor ** (r + 1)`` trials, so a study of n trials
        uses ``floor(log_rf(n))`` rungs (a study without a trial limit uses them all).
        """
        if not self.subset_rungs or self.pruner != "successive_halving":
            return []
        if self.n_trials is None:
            return list(self.subset_rungs)
        fit = 0
        while fit < len(self.subset_rungs) and self.reduction_factor ** (fit + 1) <= self.n_trials:
            fit += 1
        return list(self.subset_rungs[:fit])

    def depth_range(self, backbone: str) -> list[int]:
        """The searched freeze-depth range for ``backbone`` (its whole range when not given)."""
        from tlcore import backbones as bb

        return list(self.freeze_depth) if self.freeze_depth is not None else [0, bb.get(backbone).num_blocks]

    def lr_range(self, backbone: str, method: str, depth: int | None) -> list[float]:
        """The learning-rate range searched for a trial: ``learning_rate`` under the depth-aware
        ceiling (``lr_ceiling_at_depth0``) for a fine_tune trial that unfreezes blocks."""
        from tlcore import backbones as bb

        lo, hi = self.learning_rate
        blocks = bb.get(backbone).num_blocks
        if self.lr_ceiling_at_depth0 is None or method != "fine_tune" or depth is None or depth >= blocks:
            return [lo, hi]
        ceiling = hi * self.lr_ceiling_at_depth0 ** (1.0 - depth / blocks)
        return [lo, max(lo, ceiling)]

    def middle_lr(self, backbone: str, method: str, depth: int | None) -> float | None:
        """The geometric middle of ``lr_range``: the learning rate of the recipe trial and of the
        scout's seeded trials. None when the range is a single value (nothing is searched)."""
        lo, hi = self.lr_range(backbone, method, depth)
        return math.sqrt(lo * hi) if lo < hi else None

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask an Optuna trial for this spec's parameters; returns them."""
        p: dict[str, Any] = {}
        p["backbone"] = (trial.suggest_categorical("backbone", self.backbones) if len(self.backbones) > 1
                         else self.backbones[0])
        p["method"] = (trial.suggest_categorical("method", self.methods) if len(self.methods) > 1
                       else self.methods[0])
        if p["method"] != "feature_extraction":
            lo, hi = self.depth_range(p["backbone"])
            p["freeze_depth"] = trial.suggest_int("freeze_depth", lo, hi) if lo < hi else lo
        lo, hi = self.lr_range(p["backbone"], p["method"], p.get("freeze_depth"))
        p["learning_rate"] = trial.suggest_float("learning_rate", lo, hi, log=True) if lo < hi else lo
        if self.fine_tune_factor is not None and p["method"] == "two_phase":
            lo, hi = self.fine_tune_factor
            p["fine_tune_factor"] = trial.suggest_float("fine_tune_factor", lo, hi, log=True) if lo < hi else lo
        if self.dropout is not None:
            lo, hi = self.dropout
            p["dropout"] = trial.suggest_float("dropout", lo, hi) if lo < hi else lo
        if self.batch_sizes is not None:
            p["batch_size"] = (trial.suggest_categorical("batch_size", self.batch_sizes)
                               if len(self.batch_sizes) > 1 else self.batch_sizes[0])
        return p

    def train_spec(self, params: dict[str, Any]) -> TrainSpec:
        """The ``TrainSpec`` of one trial with ``params`` (missing ones take the fixed values)."""
        method = params.get("method", self.methods[0])
        backbone = params.get("backbone", self.backbones[0])
        depth = params.get("freeze_depth")
        if depth is None and method != "feature_extraction":
            depth = self.depth_range(backbone)[0]
        head = self.head_epochs
        if method == "two_phase" and head is not None and head >= self.epochs:
            head = None
        from tlcore import backbones as bb

        frozen_all = method == "feature_extraction" or depth == bb.get(backbone).num_blocks
        epochs = self.epochs if method != "two_phase" else max(2, self.epochs)
        early_stopping = self.early_stopping
        if frozen_all and self.fe_epochs is not None:  # cheap epochs on cached features: run to convergence
            epochs, early_stopping = self.fe_epochs, max(self.early_stopping, 3)
        kw: dict[str, Any] = dict(
            dataset=self.dataset, backbone=backbone, weights=self.weights, image_size=self.image_size,
            resize_mode=self.resize_mode, method=method,
            freeze_depth=None if method == "feature_extraction" else depth,
            learning_rate=params.get("learning_rate", self.learning_rate[0]),
            epochs=epochs,
            head_epochs=head if method == "two_phase" else None,
            batch_size=params.get("batch_size", self.batch_size),
            dropout=params.get("dropout", TrainSpec.dropout), label_smoothing=self.label_smoothing, lr_schedule=self.lr_schedule,
            augment=self.augment, aug_copies=self.aug_copies, class_weights=self.class_weights,
            early_stopping=early_stopping, seed=self.seed, head_init=self.head_init, batchnorm=self.batchnorm,
            warmup_epochs=0.0 if frozen_all else self.warmup_epochs,
            subset_rungs=None if frozen_all else (self.rungs() or None), divergence_guard=self.divergence_guard,
            val_fraction=self.val_fraction, test_fraction=self.test_fraction, split_seed=self.split_seed,
        )
        if "fine_tune_factor" in params:
            kw["fine_tune_factor"] = params["fine_tune_factor"]
        return TrainSpec(**kw)
