"""Typed, validated specs that round-trip to dict and YAML.

The same spec drives the CLI, the workers and the pages. Each spec is a frozen
dataclass; ``from_dict`` validates and refuses unknown keys with a message that
lists the known ones.

Example:

>>> spec = SplitSpec(val_fraction=0.2, test_fraction=0.1, seed=7)
>>> SplitSpec.from_yaml(spec.to_yaml()) == spec
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import yaml

from tlcore.errors import ConfigError

__all__ = ["Spec", "SplitSpec"]

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
    def from_dict(cls: type[S], data: dict[str, Any] | None) -> S:
        data = dict(data or {})
        if not isinstance(data, dict):
            raise ConfigError(f"A {cls.__name__} must be a mapping.", received=type(data).__name__)
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
    def from_yaml(cls: type[S], text: str) -> S:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"The {cls.__name__} is not valid YAML.", fix=str(exc)) from exc
        return cls.from_dict(data)


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
