"""Augmentation pipelines: a curated albumentations catalogue, presets, validation, storage.

A pipeline is an ``AugmentSpec``: an ordered list of steps, each an albumentations
transform from ``CATALOGUE`` with its parameters. The spec is validated against the
catalogue when it is made (unknown transform or parameter, wrong type, value out of
range, ``min > max``), so a spec that exists always builds. ``build_pipeline`` turns it
into an ``A.Compose``; serialization goes through albumentations' own ``to_dict`` /
``from_dict``, and loading a foreign albumentations dict only admits known transforms
(never ``Lambda``, never an unknown class).

Transforms whose output size is a parameter (``RandomResizedCrop``) take it from
``image_size`` when the pipeline is built: the model's input size for training, the
image's own size for previews. Every pipeline therefore returns images of the size it
is given (or of ``image_size``).

Four presets are always available by name: "none", "light", "medium", "heavy". Saved
pipelines live in ``<workspace>/augmentations/<name>.yaml`` and may not take a
preset's name.

Entry points: ``CATALOGUE`` / ``GROUPS`` (``TransformInfo``, ``ParamSchema``),
``AugmentSpec`` / ``StepSpec``, ``preset_spec``, ``build_pipeline``, ``preview``,
``parse_spec_text`` (YAML/JSON in any accepted form), ``save_pipeline`` /
``load_pipeline`` / ``list_pipelines`` / ``delete_pipeline``, and ``get_spec(ws,
name)``, which resolves a preset or saved name as ``TrainSpec.augment`` and
``StudySpec.augment`` give it. Users: ``tlcore.trainer`` (augmented copies for the
feature cache, or on-the-fly), ``python -m tlcore augment`` (``cli._augment``), the
Augmentations page (``tlui.augment_widgets``) and the Search page's choice of
pipeline.

albumentations (and OpenCV, about a second together) is imported by the functions that
build or read a pipeline, not with this module: the catalogue, the presets and the saved
pipelines are listed without it, so a page that only offers them draws at once.

Example:

>>> spec = AugmentSpec(steps=[
...     StepSpec("HorizontalFlip", {"p": 0.5}),
...     StepSpec("Affine", {"rotate": [-10, 10], "p": 0.7}),
... ])
>>> images = preview(np.zeros((64, 64, 3), np.uint8), spec, n=4, seed=0)
>>> [im.shape for im in images][0]
(64, 64, 3)
>>> save_pipeline(Workspace("/tmp/ws"), "mine", spec)  # doctest: +SKIP
PosixPath('/tmp/ws/augmentations/mine.yaml')
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml

from tlcore import _yaml
from tlcore._fsutil import atomic_write_yaml
from tlcore.config import Spec
from tlcore.errors import AugmentationError, ConfigError, NotFoundError, WorkspaceError
from tlcore.workspace import Workspace, validate_name

if TYPE_CHECKING:
    import albumentations as A

# albumentations checks PyPI for a newer version when imported (by the functions below); never here.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__all__ = [
    "CATALOGUE",
    "GROUPS",
    "PRESETS",
    "PRESET_DESCRIPTIONS",
    "DEFAULT_IMAGE_SIZE",
    "ParamSchema",
    "TransformInfo",
    "StepSpec",
    "AugmentSpec",
    "preset_spec",
    "build_pipeline",
    "spec_to_albu_dict",
    "spec_from_albu_dict",
    "pipeline_to_dict",
    "pipeline_to_json",
    "pipeline_to_yaml",
    "pipeline_from_dict",
    "parse_spec_text",
    "preview",
    "save_pipeline",
    "load_pipeline",
    "list_pipelines",
    "delete_pipeline",
    "pipeline_names",
    "get_spec",
    "saved_pipeline_of",
]

ParamKind = Literal["float", "int", "bool", "float_range", "int_range", "choice"]

DEFAULT_IMAGE_SIZE: tuple[int, int] = (224, 224)
"""(height, width) given to size-setting transforms when ``build_pipeline`` gets no ``image_size``."""

GROUPS: Mapping[str, str] = MappingProxyType(
    {
        "geometric": "Geometric",
        "colour": "Colour",
        "blur_noise": "Blur & noise",
        "dropout": "Dropout & erasing",
    }
)
"""Catalogue groups: id → label, in display order."""


# ------------------------------------------------------------------ schema
@dataclasses.dataclass(frozen=True)
class ParamSchema:
    """One parameter of a catalogue transform.

    Args:
        name: the albumentations argument it sets.
        kind: "float", "int", "bool", "float_range", "int_range" (a ``[low, high]``
            pair) or "choice".
        default: the value used when a step does not give one.
        min: the smallest value allowed (numbers and ranges). Defaults to None.
        max: the largest value allowed (numbers and ranges). Defaults to None.
        step: the increment a slider should use. Defaults to None.
        help: one line for tooltips and ``augment catalogue``. Defaults to "".
        choices: the allowed values of a "choice". Defaults to ().
        albu_values: for a "choice", the albumentations value of each choice when it
            differs from the choice itself (e.g. border names → OpenCV constants).
            Defaults to None.
        odd: integers (or both ends of an integer range) must be odd, as kernel
            sizes are. Defaults to False.
    """

    name: str
    kind: ParamKind
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    help: str = ""
    choices: tuple[str, ...] = ()
    albu_values: Mapping[str, Any] | None = None
    odd: bool = False

    @property
    def label(self) -> str:
        """A human label: ``hole_height_range`` → "Hole height range"."""
        return "Probability p" if self.name == "p" else self.name.replace("_", " ").capitalize()

    def to_albu(self, value: Any) -> Any:
        """The albumentations argument for a (validated) value."""
        if self.kind == "choice" and self.albu_values is not None:
            return self.albu_values[value]
        if self.kind in ("float_range", "int_range"):
            return tuple(value)
        return value

    def from_albu(self, value: Any) -> Any:
        """The inverse of ``to_albu`` for a value read from an albumentations dict."""
        if self.kind == "choice" and self.albu_values is not None:
            for label, albu in self.albu_values.items():
                if _same(albu, value):
                    return label
            return value  # validation then names the allowed choices
        if self.kind in ("float_range", "int_range") and isinstance(value, Mapping):
            # Affine stores ranges per axis: {"x": [lo, hi], "y": [lo, hi]}
            x, y = value.get("x"), value.get("y")
            return x if _same(x, y) else value
        return value

    def describe(self) -> str:
        """A short text: kind, bounds, default."""
        if self.kind == "choice":
            bounds = "one of " + ", ".join(self.choices)
        elif self.kind == "bool":
            bounds = "true or false"
        else:
            bounds = f"in [{_fmt(self.min)}, {_fmt(self.max)}]" + (" (odd)" if self.odd else "")
        return f"{self.kind} {bounds}, default {_fmt(self.default)}"


@dataclasses.dataclass(frozen=True)
class TransformInfo:
    """A transform of the catalogue.

    Args:
        name: the albumentations class name.
        group: a key of ``GROUPS``.
        description: one line on what it does.
        params: the parameters a user can set; ``p`` always among them.
        fixed: albumentations arguments always passed as given (e.g. ``keep_size``).
            Defaults to none.
        sized: the transform takes its output ``size`` from ``image_size``. Defaults to False.
    """

    name: str
    group: str
    description: str
    params: tuple[ParamSchema, ...]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sized: bool = False

    def param(self, name: str) -> ParamSchema:
        for ps in self.params:
            if ps.name == name:
                return ps
        raise KeyError(name)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(ps.name for ps in self.params)

    @property
    def defaults(self) -> dict[str, Any]:
        return {ps.name: ps.default for ps in self.params}


def _p(default: float) -> ParamSchema:
    return ParamSchema("p", "float", default, 0.0, 1.0, 0.05, "Probability that the step is applied to an image.")


def _fr(name: str, default: tuple[float, float], lo: float, hi: float, step: float, help: str) -> ParamSchema:
    return ParamSchema(name, "float_range", default, lo, hi, step, help)


def _ir(name: str, default: tuple[int, int], lo: int, hi: int, step: int, help: str, *, odd: bool = False) -> ParamSchema:
    return ParamSchema(name, "int_range", default, lo, hi, step, help, odd=odd)


_BORDERS = {  # OpenCV's cv2.BORDER_* values, written out so that listing them does not import OpenCV
    "reflect_101": 4,  # cv2.BORDER_REFLECT_101
    "reflect": 2,  # cv2.BORDER_REFLECT
    "replicate": 1,  # cv2.BORDER_REPLICATE
    "constant": 0,  # cv2.BORDER_CONSTANT
}


def _border(default: str = "reflect_101") -> ParamSchema:
    return ParamSchema(
        "border_mode", "choice", default, help="How pixels moved in from outside the image are filled "
        "(reflect_101 mirrors the image, constant fills black).",
        choices=tuple(_BORDERS), albu_values=MappingProxyType(_BORDERS),
    )


_FILLS = {"black": 0, "gray": 128, "white": 255, "random": "random", "random_uniform": "random_uniform"}


def _fill(default: str = "black") -> ParamSchema:
    return ParamSchema(
        "fill", "choice", default, help="What erased regions are filled with "
        "(random: per-pixel noise, random_uniform: one random colour per region).",
        choices=tuple(_FILLS), albu_values=MappingProxyType(_FILLS),
    )


_T = TransformInfo
_CATALOGUE_LIST: tuple[TransformInfo, ...] = (
    # ------------------------------------------------------------- geometric
    _T("HorizontalFlip", "geometric", "Mirror the image left-right (safe for most photos).", (_p(0.5),)),
    _T("VerticalFlip", "geometric", "Mirror the image upside down (only where orientation carries no meaning, "
       "e.g. aerial or microscope images).", (_p(0.5),)),
    _T("Affine", "geometric", "Rotate, zoom, shift and shear the image in one resampling.", (
        _fr("rotate", (-15.0, 15.0), -180.0, 180.0, 1.0, "Rotation angle range in degrees."),
        _fr("scale", (0.9, 1.1), 0.5, 2.0, 0.05, "Zoom factor range (1 = unchanged, < 1 zooms out)."),
        _fr("translate_percent", (-0.1, 0.1), -0.5, 0.5, 0.01, "Shift range as a fraction of the image size."),
        _fr("shear", (-5.0, 5.0), -30.0, 30.0, 1.0, "Shear angle range in degrees."),
        _border(),
        _p(0.7),
    )),
    _T("RandomResizedCrop", "geometric", "Crop a random part of the image and resize it back to the input size "
       "(the classic ImageNet augmentation).", (
        _fr("scale", (0.5, 1.0), 0.05, 1.0, 0.05, "Area of the crop as a fraction of the image."),
        _fr("ratio", (0.75, 1.3333), 0.25, 4.0, 0.05, "Aspect ratio (width / height) range of the crop."),
        _p(1.0),
    ), sized=True),
    _T("Perspective", "geometric", "Random perspective warp, as if the photo were taken from another angle.", (
        _fr("scale", (0.03, 0.08), 0.0, 0.3, 0.01, "Strength of the corner displacement."),
        _border("constant"),
        _p(0.3),
    ), fixed={"keep_size": True, "fit_output": False}),
    _T("GridDistortion", "geometric", "Bend the image along a coarse grid of random local stretches.", (
        ParamSchema("num_steps", "int", 5, 1, 15, 1, "Grid cells per side."),
        _fr("distort_limit", (-0.2, 0.2), -0.5, 0.5, 0.01, "Distortion range per grid line."),
        _border(),
        _p(0.2),
    )),
    _T("ElasticTransform", "geometric", "Smooth random elastic deformation (like a rubber sheet).", (
        ParamSchema("alpha", "float", 30.0, 0.0, 200.0, 1.0, "Displacement strength in pixels."),
        ParamSchema("sigma", "float", 6.0, 1.0, 50.0, 0.5, "Smoothness of the displacement field."),
        _border(),
        _p(0.2),
    )),
    _T("OpticalDistortion", "geometric", "Barrel or pincushion lens distortion.", (
        _fr("distort_limit", (-0.1, 0.1), -0.5, 0.5, 0.01, "Distortion coefficient range."),
        ParamSchema("mode", "choice", "camera", help="Lens model.", choices=("camera", "fisheye")),
        _p(0.2),
    )),
    # ---------------------------------------------------------------- colour
    _T("RandomBrightnessContrast", "colour", "Random change of brightness and contrast.", (
        _fr("brightness_limit", (-0.2, 0.2), -1.0, 1.0, 0.05, "Brightness change range (fraction of full scale)."),
        _fr("contrast_limit", (-0.2, 0.2), -1.0, 1.0, 0.05, "Contrast change range (0 = unchanged)."),
        _p(0.5),
    )),
    _T("HueSaturationValue", "colour", "Shift hue, saturation and value (brightness) in HSV space.", (
        _fr("hue_shift_limit", (-10.0, 10.0), -90.0, 90.0, 1.0, "Hue shift range (OpenCV hue units, 0-180)."),
        _fr("sat_shift_limit", (-20.0, 20.0), -100.0, 100.0, 1.0, "Saturation shift range (0-255 units)."),
        _fr("val_shift_limit", (-15.0, 15.0), -100.0, 100.0, 1.0, "Value shift range (0-255 units)."),
        _p(0.3),
    )),
    _T("ColorJitter", "colour", "Torchvision-style jitter of brightness, contrast, saturation and hue.", (
        _fr("brightness", (0.8, 1.2), 0.0, 2.0, 0.05, "Brightness factor range (1 = unchanged)."),
        _fr("contrast", (0.8, 1.2), 0.0, 2.0, 0.05, "Contrast factor range (1 = unchanged)."),
        _fr("saturation", (0.8, 1.2), 0.0, 2.0, 0.05, "Saturation factor range (1 = unchanged)."),
        _fr("hue", (-0.05, 0.05), -0.5, 0.5, 0.01, "Hue shift range as a fraction of the colour wheel."),
        _p(0.5),
    )),
    _T("RGBShift", "colour", "Add a random offset to each of the red, green and blue channels.", (
        _fr("r_shift_limit", (-15.0, 15.0), -100.0, 100.0, 1.0, "Red shift range (0-255 units)."),
        _fr("g_shift_limit", (-15.0, 15.0), -100.0, 100.0, 1.0, "Green shift range (0-255 units)."),
        _fr("b_shift_limit", (-15.0, 15.0), -100.0, 100.0, 1.0, "Blue shift range (0-255 units)."),
        _p(0.3),
    )),
    _T("RandomGamma", "colour", "Random gamma curve: brightens or darkens mid-tones.", (
        _fr("gamma_limit", (80.0, 120.0), 40.0, 250.0, 5.0, "Gamma range in percent (100 = unchanged)."),
        _p(0.3),
    )),
    _T("ToGray", "colour", "Convert to grayscale (kept as three channels).", (
        ParamSchema("method", "choice", "weighted_average", help="How colour is reduced to gray.",
                    choices=("weighted_average", "from_lab", "desaturation", "average", "max")),
        _p(0.1),
    ), fixed={"num_output_channels": 3}),
    _T("ToSepia", "colour", "Apply a sepia tone.", (_p(0.1),)),
    _T("ChannelShuffle", "colour", "Randomly reorder the RGB channels.", (_p(0.1),)),
    _T("CLAHE", "colour", "Contrast-limited adaptive histogram equalisation: boosts local contrast.", (
        _fr("clip_limit", (1.0, 4.0), 1.0, 16.0, 0.5, "Contrast limit range (higher = stronger)."),
        _p(0.2),
    )),
    _T("Equalize", "colour", "Equalise the histogram of the image.", (
        ParamSchema("mode", "choice", "cv", help="Equalisation implementation.", choices=("cv", "pil")),
        ParamSchema("by_channels", "bool", True, help="Equalise each RGB channel separately (else luminance only)."),
        _p(0.1),
    )),
    _T("Posterize", "colour", "Reduce the number of bits per colour channel.", (
        _ir("num_bits", (4, 8), 1, 8, 1, "Bits kept per channel (8 = unchanged)."),
        _p(0.2),
    )),
    _T("Solarize", "colour", "Invert all pixels brighter than a threshold.", (
        _fr("threshold_range", (0.5, 1.0), 0.0, 1.0, 0.05, "Threshold range as a fraction of full scale."),
        _p(0.1),
    )),
    _T("PlanckianJitter", "colour", "Shift the white balance along the colour temperature of real light sources.", (
        ParamSchema("mode", "choice", "blackbody", help="Illuminant model.", choices=("blackbody", "cied")),
        _p(0.3),
    )),
    _T("RandomToneCurve", "colour", "Random S-shaped tone curve on the light and dark tones.", (
        ParamSchema("scale", "float", 0.1, 0.0, 0.5, 0.01, "Spread of the curve's control points."),
        ParamSchema("per_channel", "bool", False, help="Use a different curve for each channel."),
        _p(0.3),
    )),
    # ---------------------------------------------------------- blur & noise
    _T("GaussianBlur", "blur_noise", "Gaussian blur with a random kernel and sigma.", (
        _ir("blur_limit", (3, 7), 3, 31, 2, "Kernel size range in pixels (odd).", odd=True),
        _fr("sigma_limit", (0.1, 2.0), 0.1, 10.0, 0.1, "Gaussian sigma range."),
        _p(0.2),
    )),
    _T("MotionBlur", "blur_noise", "Blur along a random line, like camera shake.", (
        _ir("blur_limit", (3, 7), 3, 31, 2, "Kernel size range in pixels (odd).", odd=True),
        ParamSchema("allow_shifted", "bool", True, help="Allow the blur line off the kernel centre."),
        _p(0.2),
    )),
    _T("MedianBlur", "blur_noise", "Median filter with a random odd aperture.", (
        _ir("blur_limit", (3, 5), 3, 15, 2, "Aperture size range in pixels (odd).", odd=True),
        _p(0.1),
    )),
    _T("Defocus", "blur_noise", "Out-of-focus blur with a disc-shaped kernel.", (
        _ir("radius", (3, 6), 1, 20, 1, "Disc radius range in pixels."),
        _fr("alias_blur", (0.1, 0.5), 0.0, 2.0, 0.05, "Extra Gaussian blur smoothing the disc."),
        _p(0.1),
    )),
    _T("Sharpen", "blur_noise", "Sharpen and overlay on the original.", (
        _fr("alpha", (0.2, 0.5), 0.0, 1.0, 0.05, "Visibility of the sharpened image (0 = none)."),
        _fr("lightness", (0.5, 1.0), 0.0, 2.0, 0.05, "Lightness of the sharpened image."),
        _p(0.2),
    )),
    _T("GaussNoise", "blur_noise", "Add Gaussian noise.", (
        _fr("std_range", (0.02, 0.08), 0.0, 0.5, 0.01, "Noise standard deviation range (fraction of full scale)."),
        ParamSchema("per_channel", "bool", True, help="Independent noise per channel (else the same for all)."),
        _p(0.2),
    )),
    _T("ISONoise", "blur_noise", "Camera sensor noise: colour speckles and luminance grain.", (
        _fr("color_shift", (0.01, 0.05), 0.0, 0.3, 0.01, "Hue noise range."),
        _fr("intensity", (0.1, 0.5), 0.0, 1.0, 0.05, "Noise strength range."),
        _p(0.2),
    )),
    _T("ImageCompression", "blur_noise", "JPEG or WebP compression artefacts.", (
        _ir("quality_range", (60, 100), 1, 100, 1, "Quality range (100 = almost lossless)."),
        ParamSchema("compression_type", "choice", "jpeg", help="Codec.", choices=("jpeg", "webp")),
        _p(0.3),
    )),
    _T("Downscale", "blur_noise", "Shrink and enlarge back: low-resolution look.", (
        _fr("scale_range", (0.5, 0.9), 0.1, 0.99, 0.01, "Intermediate size as a fraction of the image."),
        _p(0.1),
    )),
    # ------------------------------------------------------ dropout & erasing
    _T("CoarseDropout", "dropout", "Cut out random rectangles (Cutout).", (
        _ir("num_holes_range", (1, 4), 1, 32, 1, "How many rectangles."),
        _fr("hole_height_range", (0.05, 0.15), 0.01, 0.5, 0.01, "Rectangle height range as a fraction of the image."),
        _fr("hole_width_range", (0.05, 0.15), 0.01, 0.5, 0.01, "Rectangle width range as a fraction of the image."),
        _fill(),
        _p(0.3),
    )),
    _T("Erasing", "dropout", "Random erasing: one rectangle of random area and aspect.", (
        _fr("scale", (0.02, 0.2), 0.01, 0.5, 0.01, "Erased area as a fraction of the image."),
        _fr("ratio", (0.3, 3.3), 0.1, 10.0, 0.1, "Aspect ratio range of the rectangle."),
        _fill("random"),
        _p(0.25),
    )),
    _T("GridDropout", "dropout", "Drop a regular grid of squares.", (
        ParamSchema("ratio", "float", 0.3, 0.05, 0.8, 0.05, "Share of each grid cell that is dropped."),
        ParamSchema("random_offset", "bool", True, help="Shift the grid randomly."),
        _fill(),
        _p(0.2),
    )),
    _T("PixelDropout", "dropout", "Zero out random single pixels.", (
        ParamSchema("dropout_prob", "float", 0.02, 0.0, 0.3, 0.01, "Probability that a pixel is dropped."),
        ParamSchema("per_channel", "bool", False, help="Drop channels of a pixel independently."),
        _p(0.1),
    )),
)

CATALOGUE: Mapping[str, TransformInfo] = MappingProxyType({t.name: t for t in _CATALOGUE_LIST})
"""Every transform a pipeline may use: albumentations class name → ``TransformInfo``."""

_COMPOSITIONS = frozenset({"Compose", "Sequential", "OneOf", "SomeOf", "OneOrOther", "RandomOrder"})

# Old or similar albumentations names → what to use instead, for the error message.
_INSTEAD = {
    "ShiftScaleRotate": "Affine",
    "Rotate": "Affine",
    "SafeRotate": "Affine",
    "Flip": "HorizontalFlip or VerticalFlip",
    "Cutout": "CoarseDropout",
    "RandomSizedCrop": "RandomResizedCrop",
    "RandomCrop": "RandomResizedCrop",
    "JpegCompression": "ImageCompression",
    "Blur": "GaussianBlur",
    "RandomBrightness": "RandomBrightnessContrast",
    "RandomContrast": "RandomBrightnessContrast",
    "RandomRotate90": "Affine with rotate (quarter turns would change the shape of non-square images)",
    "Lambda": "a catalogue transform (custom code cannot be loaded)",
}


# -------------------------------------------------------------- validation
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _same(a: Any, b: Any) -> bool:
    """Equality that treats lists and tuples alike and floats approximately."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _unknown_transform(name: Any, where: str) -> AugmentationError:
    fix = f"Use one of: {', '.join(CATALOGUE)}."
    if isinstance(name, str) and name in _INSTEAD:
        fix = f"Use {_INSTEAD[name]} instead. Known transforms: {', '.join(CATALOGUE)}."
    return AugmentationError(f"{where}: unknown transform.", received=repr(name), fix=fix)


def _check_value(ps: ParamSchema, value: Any, where: str) -> Any:
    """Validate one parameter value; return it normalised (ranges as tuples, floats as float)."""
    rec = f"{ps.name}={_fmt(value) if not isinstance(value, str) else repr(value)}"
    head = f"{where}: parameter '{ps.name}'"

    def bad(msg: str, fix: str) -> AugmentationError:
        return AugmentationError(f"{head} {msg}", received=rec, fix=fix)

    if ps.name == "p":
        if not _is_number(value) or not math.isfinite(float(value)) or not 0.0 <= float(value) <= 1.0:
            raise bad("(the probability) must be a number in [0, 1].", "Use e.g. p: 0.5; 1 applies the step always.")
        return float(value)
    bounds = f"[{_fmt(ps.min)}, {_fmt(ps.max)}]"
    if ps.kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise bad("must be true or false.", f"Write {ps.name}: true or {ps.name}: false.")
        return bool(value)
    if ps.kind == "choice":
        if not isinstance(value, str) or value not in ps.choices:
            raise bad("is not one of its choices.", f"Use one of: {', '.join(ps.choices)}.")
        return value
    if ps.kind in ("float", "int"):
        if ps.kind == "int":
            if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
                raise bad("must be an integer.", f"Give a whole number in {bounds}.")
            v: Any = int(value)
        else:
            if not _is_number(value) or not math.isfinite(float(value)):
                raise bad("must be a number.", f"Give a number in {bounds}.")
            v = float(value)
        if (ps.min is not None and v < ps.min) or (ps.max is not None and v > ps.max):
            raise bad(f"is out of range {bounds}.", f"Keep {ps.name} within {bounds}.")
        if ps.odd and v % 2 == 0:
            raise bad("must be odd.", f"Use an odd value, e.g. {v + 1}.")
        return v
    # ranges
    example = _fmt(ps.default)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise bad("must be a [low, high] pair.", f"Write it as a two-element list, e.g. {ps.name}: {example}.")
    lo, hi = value
    if ps.kind == "int_range":
        if not all(isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) for x in (lo, hi)):
            raise bad("must be a pair of integers.", f"Write whole numbers, e.g. {ps.name}: {example}.")
        lo, hi = int(lo), int(hi)
    else:
        if not all(_is_number(x) and math.isfinite(float(x)) for x in (lo, hi)):
            raise bad("must be a pair of numbers.", f"Write numbers, e.g. {ps.name}: {example}.")
        lo, hi = float(lo), float(hi)
    if lo > hi:
        raise bad("has its low end above its high end.", f"Write the smaller value first: [{_fmt(hi)}, {_fmt(lo)}].")
    if (ps.min is not None and lo < ps.min) or (ps.max is not None and hi > ps.max):
        raise bad(f"is out of range {bounds}.", f"Keep both ends of {ps.name} within {bounds}.")
    if ps.odd and (lo % 2 == 0 or hi % 2 == 0):
        raise bad("must have odd ends (kernel sizes are odd).", f"Use odd values, e.g. {example}.")
    return (lo, hi)


def _albu_args(info: TransformInfo, params: Mapping[str, Any], image_size: tuple[int, int]) -> dict[str, Any]:
    args = {ps.name: ps.to_albu(params[ps.name]) for ps in info.params}
    args.update(info.fixed)
    if info.sized:
        args["size"] = tuple(image_size)
    return args


def _albu_error_text(exc: BaseException) -> str:
    """One line from an albumentations (pydantic) validation error."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            items = errors()
            return "; ".join(
                f"{'.'.join(str(x) for x in e.get('loc', ())) or 'value'}: {e.get('msg', '')}" for e in items[:3]
            )
        except Exception:  # noqa: BLE001 - fall back to the text
            pass
    lines = str(exc).strip().splitlines()
    found = []
    for loc, msg in zip(lines[1:], lines[2:]):  # pydantic's text: "loc" then "  msg [type=...]"
        if loc and not loc.startswith(" ") and msg.startswith("  ") and not msg.startswith("    "):
            found.append(f"{loc.strip()}: {msg.strip().split(' [type=')[0]}")
    if found:
        return "; ".join(found[:2])
    return lines[0].strip() if lines else type(exc).__name__


def _instantiate(info: TransformInfo, params: Mapping[str, Any], image_size: tuple[int, int], where: str) -> Any:
    """The albumentations transform; its own validation failures become AugmentationError."""
    import albumentations as A

    cls = getattr(A, info.name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(**_albu_args(info, params, image_size))
    except (ValueError, TypeError) as exc:
        raise AugmentationError(
            f"{where}: albumentations refuses these parameters ({_albu_error_text(exc)}).",
            received=", ".join(f"{k}={_fmt(v)}" for k, v in params.items()),
            fix="Change the values named in the message.",
        ) from exc


def _normalise_step(name: Any, params: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(name, str) or name not in CATALOGUE:
        raise _unknown_transform(name, where)
    info = CATALOGUE[name]
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise AugmentationError(
            f"{where}: parameters must be a mapping of name to value.",
            received=repr(params),
            fix="Write them as 'params: {p: 0.5}'.",
        )
    unknown = [k for k in params if k not in info.param_names]
    if unknown:
        raise AugmentationError(
            f"{where}: unknown parameter '{unknown[0]}'.",
            received=f"{unknown[0]}={_fmt(params[unknown[0]])}",
            fix=f"{name} takes: {', '.join(info.param_names)}.",
        )
    out = {ps.name: _check_value(ps, params[ps.name] if ps.name in params else ps.default, where) for ps in info.params}
    _instantiate(info, out, DEFAULT_IMAGE_SIZE, where)
    return name, out


def _plain(v: Any) -> Any:
    """Tuples → lists, numpy scalars → Python, recursively (for YAML/JSON)."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


# ------------------------------------------------------------------- specs
@dataclasses.dataclass(frozen=True)
class StepSpec(Spec):
    """One step of a pipeline: a catalogue transform and its parameters.

    Parameters left out take the catalogue's defaults; after construction
    ``params`` holds every parameter of the transform, ranges as tuples.

    Args:
        name: an albumentations class name from ``CATALOGUE``.
        params: parameter name → value. Defaults to the catalogue defaults.

    Raises:
        AugmentationError: unknown transform or parameter, wrong type, value out
            of range, a range whose low end is above its high end, ``p`` outside [0, 1].
    """

    name: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.name if isinstance(self.name, str) and self.name in CATALOGUE else "Step"
        _, params = _normalise_step(self.name, self.params, where)
        object.__setattr__(self, "params", params)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @property
    def info(self) -> TransformInfo:
        return CATALOGUE[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": _plain(self.params)}

    def build(self, image_size: tuple[int, int] | None = None) -> Any:
        """The albumentations transform for this step.

        Args:
            image_size: (height, width) for transforms that set the output size.
                Defaults to ``DEFAULT_IMAGE_SIZE``.
        """
        return _instantiate(self.info, self.params, _check_size(image_size), self.name)


def _coerce_step(item: Any, where: str) -> StepSpec:
    if isinstance(item, StepSpec):
        return item
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, (list, tuple)) and len(item) == 2:
        name, params = item
    elif isinstance(item, Mapping):
        unknown = sorted(set(item) - {"name", "params"})
        if unknown or "name" not in item:
            raise AugmentationError(
                f"{where}: a step is a mapping with 'name' and 'params'.",
                received=repr(dict(item)),
                fix="Write e.g. {name: HorizontalFlip, params: {p: 0.5}}.",
            )
        name, params = item["name"], item.get("params")
    else:
        raise AugmentationError(
            f"{where}: a step must be a mapping with 'name' and 'params'.",
            received=repr(item),
            fix="Write e.g. {name: HorizontalFlip, params: {p: 0.5}}.",
        )
    label = f"{where} ({name})" if isinstance(name, str) and name in CATALOGUE else where
    name, params = _normalise_step(name, params, label)
    return StepSpec(name, params)


@dataclasses.dataclass(frozen=True)
class AugmentSpec(Spec):
    """An augmentation pipeline: steps applied in order to each training image.

    Args:
        steps: ``StepSpec`` objects, or their dicts (``{"name": ..., "params": ...}``),
            ``(name, params)`` pairs or bare transform names. Defaults to no steps
            (no augmentation).

    Raises:
        AugmentationError: a step is invalid; the message names the step (1-based),
            the transform, the parameter and the value received.

    Example:

    >>> AugmentSpec(steps=[("HorizontalFlip", {"p": 0.5})]).steps[0].params
    {'p': 0.5}
    """

    steps: tuple[StepSpec, ...] = ()

    def __post_init__(self) -> None:
        steps = self.steps
        if isinstance(steps, (str, Mapping)) or not isinstance(steps, Iterable):
            raise AugmentationError(
                "steps must be a list of steps.",
                received=repr(steps),
                fix="Write steps as a list, e.g. [{name: HorizontalFlip, params: {p: 0.5}}].",
            )
        coerced = tuple(_coerce_step(item, f"Step {i}") for i, item in enumerate(steps, start=1))
        object.__setattr__(self, "steps", coerced)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AugmentSpec:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise AugmentationError(
                "An augmentation spec must be a mapping with a 'steps' list.",
                received=type(data).__name__,
                fix="Write it as 'steps: [...]'.",
            )
        unknown = sorted(set(data) - {"steps"})
        if unknown:
            raise AugmentationError(
                f"Unknown AugmentSpec field(s): {', '.join(map(str, unknown))}.",
                received=unknown,
                fix="An augmentation spec has one field, 'steps'.",
            )
        return cls(steps=data.get("steps") or ())

    @property
    def names(self) -> list[str]:
        """The transform names, in order."""
        return [s.name for s in self.steps]


# ----------------------------------------------------------------- presets
def _preset(*steps: tuple[str, dict[str, Any]]) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    return tuple((name, MappingProxyType(dict(params))) for name, params in steps)


PRESETS: Mapping[str, tuple[tuple[str, Mapping[str, Any]], ...]] = MappingProxyType(
    {
        "none": _preset(),
        "light": _preset(
            ("HorizontalFlip", {"p": 0.5}),
            ("RandomBrightnessContrast", {"brightness_limit": (-0.1, 0.1), "contrast_limit": (-0.1, 0.1), "p": 0.5}),
        ),
        "medium": _preset(
            ("HorizontalFlip", {"p": 0.5}),
            ("Affine", {"rotate": (-15.0, 15.0), "scale": (0.9, 1.1), "translate_percent": (-0.08, 0.08),
                        "shear": (-5.0, 5.0), "p": 0.7}),
            ("RandomBrightnessContrast", {"brightness_limit": (-0.2, 0.2), "contrast_limit": (-0.2, 0.2), "p": 0.5}),
            ("HueSaturationValue", {"hue_shift_limit": (-10.0, 10.0), "sat_shift_limit": (-20.0, 20.0),
                                    "val_shift_limit": (-15.0, 15.0), "p": 0.3}),
            ("GaussianBlur", {"blur_limit": (3, 5), "sigma_limit": (0.1, 1.5), "p": 0.15}),
        ),
        "heavy": _preset(
            ("RandomResizedCrop", {"scale": (0.6, 1.0), "ratio": (0.75, 1.3333), "p": 1.0}),
            ("HorizontalFlip", {"p": 0.5}),
            ("Affine", {"rotate": (-30.0, 30.0), "scale": (0.8, 1.2), "translate_percent": (-0.12, 0.12),
                        "shear": (-10.0, 10.0), "p": 0.8}),
            ("Perspective", {"scale": (0.03, 0.08), "p": 0.3}),
            ("RandomBrightnessContrast", {"brightness_limit": (-0.3, 0.3), "contrast_limit": (-0.3, 0.3), "p": 0.6}),
            ("HueSaturationValue", {"hue_shift_limit": (-15.0, 15.0), "sat_shift_limit": (-30.0, 30.0),
                                    "val_shift_limit": (-20.0, 20.0), "p": 0.4}),
            ("GaussianBlur", {"blur_limit": (3, 7), "sigma_limit": (0.1, 2.0), "p": 0.2}),
            ("GaussNoise", {"std_range": (0.02, 0.08), "p": 0.25}),
            ("CoarseDropout", {"num_holes_range": (1, 6), "hole_height_range": (0.05, 0.15),
                               "hole_width_range": (0.05, 0.15), "p": 0.4}),
        ),
    }
)
"""Built-in pipelines: name → ``(transform, params)`` steps."""

PRESET_DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "none": "No augmentation: images are used as they are.",
        "light": "Horizontal flips and a mild brightness/contrast change.",
        "medium": "Light, plus rotation/zoom/shift/shear, hue/saturation shifts and a little blur.",
        "heavy": "Random resized crops, stronger geometry with perspective, colour, blur, noise and cut-out holes.",
    }
)


def preset_spec(name: str) -> AugmentSpec:
    """The ``AugmentSpec`` of a preset.

    Raises:
        NotFoundError: ``name`` is not a preset.
    """
    if name not in PRESETS:
        raise NotFoundError("No augmentation preset has that name.", received=repr(name),
                            fix=f"Presets: {', '.join(PRESETS)}.")
    return AugmentSpec(steps=[(n, dict(p)) for n, p in PRESETS[name]])


# ------------------------------------------------------------ albumentations
def _check_size(image_size: Sequence[int] | None) -> tuple[int, int]:
    if image_size is None:
        return DEFAULT_IMAGE_SIZE
    ok = isinstance(image_size, (list, tuple)) and len(image_size) == 2 and all(
        isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x > 0 for x in image_size
    )
    if not ok:
        raise AugmentationError(
            "image_size must be a (height, width) pair of positive integers.",
            received=f"image_size={image_size!r}",
            fix="Pass e.g. image_size=(224, 224).",
        )
    return int(image_size[0]), int(image_size[1])


def build_pipeline(
    spec: AugmentSpec, *, image_size: Sequence[int] | None = None, seed: int | None = None
) -> A.Compose:
    """The albumentations pipeline of ``spec``.

    Args:
        spec: the pipeline.
        image_size: (height, width) of the output for transforms that set it
            (``RandomResizedCrop``); give the model's input size, or the image's own
            size for previews. Defaults to ``DEFAULT_IMAGE_SIZE``.
        seed: seeds the pipeline's random generator, so the same seed and the same
            sequence of images give the same results. Defaults to None (random).

    Returns:
        An ``A.Compose``; call it as ``pipeline(image=array)["image"]``.
    """
    if not isinstance(spec, AugmentSpec):
        raise AugmentationError("build_pipeline needs an AugmentSpec.", received=type(spec).__name__,
                                fix="Make one with AugmentSpec(steps=[...]) or get_spec(ws, name).")
    import albumentations as A

    size = _check_size(image_size)
    transforms = [step.build(size) for step in spec.steps]
    return A.Compose(transforms, p=1.0, seed=seed)


def pipeline_to_dict(pipeline: Any) -> dict[str, Any]:
    """albumentations' own ``A.to_dict`` of a pipeline, as plain lists and dicts."""
    import albumentations as A

    return _plain(A.to_dict(pipeline))


def pipeline_to_json(pipeline: Any) -> str:
    """The pipeline as albumentations JSON (``A.to_dict``), indented."""
    return json.dumps(pipeline_to_dict(pipeline), indent=2)


def pipeline_to_yaml(pipeline: Any) -> str:
    """The pipeline as albumentations YAML (``A.to_dict``)."""
    return yaml.safe_dump(pipeline_to_dict(pipeline), sort_keys=False)


def spec_to_albu_dict(spec: AugmentSpec, *, image_size: Sequence[int] | None = None) -> dict[str, Any]:
    """``A.to_dict`` of ``build_pipeline(spec, image_size=image_size)``, as plain data.

    Args:
        spec: the pipeline.
        image_size: as for ``build_pipeline``. Defaults to ``DEFAULT_IMAGE_SIZE``.
    """
    return pipeline_to_dict(build_pipeline(spec, image_size=image_size))


def _short(name: Any) -> Any:
    if isinstance(name, str) and name.startswith("albumentations."):
        return name.rsplit(".", 1)[-1]
    return name


def _unwrap(d: Any) -> Mapping[str, Any]:
    """The transform dict of an ``A.to_dict`` result or of a bare transform dict."""
    if isinstance(d, Mapping) and isinstance(d.get("transform"), Mapping):
        return d["transform"]
    if isinstance(d, Mapping) and "__class_fullname__" in d:
        return d
    raise AugmentationError(
        "This is not an albumentations pipeline dict.",
        received=repr(d)[:200],
        fix="Give the output of A.to_dict(pipeline): {'__version__': ..., 'transform': {...}}.",
    )


def _check_allowed(t: Any, where: str = "transform") -> None:
    """Refuse anything but compositions and catalogue transforms, recursively."""
    if not isinstance(t, Mapping):
        raise AugmentationError(f"The pipeline's {where} is not a mapping.", received=repr(t)[:200])
    name = _short(t.get("__class_fullname__"))
    if name in _COMPOSITIONS:
        children = t.get("transforms", [])
        if not isinstance(children, list):
            raise AugmentationError(f"The pipeline's {where} ({name}) has no list of transforms.",
                                    received=repr(children)[:200])
        for i, child in enumerate(children, start=1):
            _check_allowed(child, f"{where}.{i}" if where != "transform" else f"transform {i}")
        return
    if name not in CATALOGUE:
        raise AugmentationError(
            f"The pipeline's {where} is not an allowed transform.",
            received=repr(t.get("__class_fullname__")),
            fix=(f"Use {_INSTEAD[name]}. " if isinstance(name, str) and name in _INSTEAD else "")
            + f"Allowed: {', '.join(CATALOGUE)}, and the compositions {', '.join(sorted(_COMPOSITIONS))}.",
        )


def pipeline_from_dict(d: Mapping[str, Any]) -> A.Compose:
    """Load a pipeline from albumentations' dict form, admitting only known transforms.

    Every transform, nested ones included, must be in ``CATALOGUE`` or be one of
    albumentations' compositions (Compose, OneOf, SomeOf, ...). ``Lambda`` (custom
    code) and unknown class names are refused before anything is built.

    Args:
        d: the output of ``A.to_dict`` (``{"__version__", "transform"}``) or its
            ``"transform"`` part.

    Returns:
        An ``A.Compose`` (a lone transform is wrapped in one).

    Raises:
        AugmentationError: a transform is not allowed or its arguments are invalid.
    """
    import albumentations as A

    t = _unwrap(d)
    _check_allowed(t)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = A.from_dict({"transform": dict(t)})
    except (ValueError, TypeError, KeyError) as exc:
        raise AugmentationError(
            f"albumentations could not build the pipeline from this dict ({_albu_error_text(exc)}).",
            received=repr(dict(t))[:300],
            fix="Check the transforms' arguments against albumentations 2.x.",
        ) from exc
    return obj if isinstance(obj, A.Compose) else A.Compose([obj])


def spec_from_albu_dict(d: Mapping[str, Any]) -> AugmentSpec:
    """An ``AugmentSpec`` from albumentations' dict form of a flat pipeline.

    The pipeline must be a ``Compose`` (or one transform) of catalogue transforms,
    and every argument must be one the catalogue exposes or equal to the value the
    workbench passes, so nothing is silently lost. ``RandomResizedCrop``'s ``size``
    is ignored: the workbench sets it from the image size.

    Raises:
        AugmentationError: a transform is not allowed, nested compositions are used,
            or an argument cannot be represented.
    """
    import albumentations as A

    t = _unwrap(d)
    _check_allowed(t)
    name = _short(t.get("__class_fullname__"))
    if name == "Compose":
        items = list(t.get("transforms", []))
    elif name in _COMPOSITIONS:
        items = [t]
    else:
        items = [t]
    steps: list[StepSpec] = []
    for i, td in enumerate(items, start=1):
        tname = _short(td.get("__class_fullname__"))
        if tname in _COMPOSITIONS:
            raise AugmentationError(
                f"Step {i} is a {tname}; the workbench edits flat pipelines only.",
                received=tname,
                fix="Flatten the pipeline into a list of transforms, each with its own probability p.",
            )
        info = CATALOGUE[tname]
        where = f"Step {i} ({tname})"
        td = _plain(td)
        if tname == "Affine" and td.get("translate_percent") is None:
            # A shift given in pixels; zero pixels is the same as a zero fraction.
            px = td.get("translate_px")
            if px is None or _same(px, {"x": [0, 0], "y": [0, 0]}) or _same(px, [0, 0]) or _same(px, 0):
                td["translate_percent"] = [0.0, 0.0]
                td.pop("translate_px", None)
        # A parameter missing from the dict has albumentations' default, not the catalogue's.
        signature = inspect.signature(getattr(A, tname).__init__).parameters
        params = {}
        for ps in info.params:
            if ps.name in td:
                params[ps.name] = ps.from_albu(td[ps.name])
            elif ps.name in signature and signature[ps.name].default is not inspect.Parameter.empty:
                params[ps.name] = ps.from_albu(_plain(signature[ps.name].default))
        _, params = _normalise_step(tname, params, where)
        step = StepSpec(tname, params)
        ours = pipeline_to_dict(step.build())["transform"]
        lost = [
            k for k in td
            if k not in ("__class_fullname__",) and not (info.sized and k == "size")
            and k not in info.param_names and not (k in ours and _same(_plain(td[k]), ours[k]))
        ]
        if lost:
            raise AugmentationError(
                f"{where} sets argument(s) the workbench does not expose: {', '.join(lost)}.",
                received=", ".join(f"{k}={_fmt(_plain(td[k]))}" for k in lost),
                fix=f"Remove them (the workbench uses {', '.join(f'{k}={_fmt(ours.get(k))}' for k in lost)}) "
                f"or set only: {', '.join(info.param_names)}.",
            )
        steps.append(step)
    return AugmentSpec(steps=steps)


def parse_spec_text(text: str, *, source: str = "the text") -> AugmentSpec:
    """An ``AugmentSpec`` from YAML or JSON text in any of the forms the workbench writes.

    Accepted: a spec (``steps: [...]``), a saved-pipeline file (``spec: {steps: ...}``)
    or an albumentations dict (``A.to_dict`` output, or ``A.save`` JSON/YAML).

    Args:
        text: the file's content.
        source: how to name it in error messages. Defaults to "the text".
    """
    try:
        data = _yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AugmentationError(f"{source} is not valid YAML or JSON.", received=_yaml.error_line(exc),
                                fix="Fix the syntax; a spec looks like 'steps: [{name: HorizontalFlip, params: {p: 0.5}}]'.") from exc
    if isinstance(data, Mapping) and "spec" in data:
        return AugmentSpec.from_dict(data["spec"])
    if isinstance(data, Mapping) and "steps" in data:
        return AugmentSpec.from_dict(data)
    if isinstance(data, Mapping) and ("transform" in data or "__class_fullname__" in data):
        return spec_from_albu_dict(data)
    raise AugmentationError(
        f"{source} holds no augmentation pipeline.",
        received=(", ".join(map(str, data)) if isinstance(data, Mapping) else type(data).__name__),
        fix="Write 'steps: [...]' (see 'python -m tlcore augment catalogue'), or give an albumentations "
        "A.to_dict / A.save output.",
    )


# ----------------------------------------------------------------- preview
def _as_rgb(image: Any) -> np.ndarray:
    arr = np.asarray(image) if isinstance(image, np.ndarray) else None
    if arr is None or arr.dtype != np.uint8 or arr.ndim not in (2, 3) or min(arr.shape[:2]) < 1:
        raise AugmentationError(
            "preview needs an image as a uint8 array of shape (H, W, 3).",
            received=(f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}").strip(),
            fix="Decode it with tlcore.datasets.load_rgb(path).",
        )
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[..., :3]
    elif arr.shape[2] != 3:
        raise AugmentationError("preview needs 1, 3 or 4 channels.", received=f"shape={arr.shape}")
    return np.ascontiguousarray(arr)


def preview(image: np.ndarray, spec_or_pipeline: AugmentSpec | A.Compose, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """``n`` augmented versions of ``image``, reproducibly.

    The same image, spec and seed always give the same images; another seed
    gives others. An ``AugmentSpec`` is built at the image's own size, so every
    result has the input's shape. A given ``A.Compose`` is re-seeded (its random
    state is reset) and used as it is.

    Args:
        image: ``uint8`` array, (H, W, 3); grayscale and RGBA are converted.
        spec_or_pipeline: an ``AugmentSpec`` or an albumentations ``Compose``.
        n: how many versions, 1-64. Defaults to 8.
        seed: the random seed. Defaults to 0.

    Returns:
        ``n`` arrays.
    """
    import albumentations as A

    img = _as_rgb(image)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 64:
        raise AugmentationError("n must be an integer in [1, 64].", received=f"n={n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AugmentationError("seed must be a non-negative integer.", received=f"seed={seed!r}")
    if isinstance(spec_or_pipeline, AugmentSpec):
        pipe = build_pipeline(spec_or_pipeline, image_size=img.shape[:2], seed=int(seed))
    elif isinstance(spec_or_pipeline, A.Compose):
        pipe = spec_or_pipeline
        pipe.set_random_seed(int(seed))
    else:
        raise AugmentationError("preview needs an AugmentSpec or an albumentations Compose.",
                                received=type(spec_or_pipeline).__name__)
    return [np.ascontiguousarray(pipe(image=img)["image"]) for _ in range(int(n))]


# --------------------------------------------------------------- workspace
_FORMAT = "tlcore-augment/1"


def _folder(ws: Workspace) -> Path:
    return ws.root / "augmentations"


def _check_pipeline_name(name: str) -> str:
    validate_name(name, "pipeline name")
    if name.lower() in PRESETS:
        raise ConfigError(
            "That name belongs to a preset.",
            received=repr(name),
            fix=f"Choose another name; {', '.join(PRESETS)} are built in.",
        )
    return name


def list_pipelines(ws: Workspace) -> list[str]:
    """Names of the pipelines saved in the workspace, sorted (presets not included)."""
    try:
        files = sorted(_folder(ws).glob("*.yaml"))
    except OSError:
        return []
    out = []
    for f in files:
        try:
            _check_pipeline_name(f.stem)
        except ConfigError:
            continue
        if f.is_file():
            out.append(f.stem)
    return out


def pipeline_names(ws: Workspace | None) -> list[str]:
    """Every name ``get_spec`` accepts: the presets, then the saved pipelines."""
    return list(PRESETS) + (list_pipelines(ws) if ws is not None else [])


def _not_found(ws: Workspace, name: str) -> NotFoundError:
    saved = list_pipelines(ws)
    return NotFoundError(
        "No augmentation pipeline is saved under that name.",
        received=repr(name),
        fix=f"Saved pipelines: {', '.join(saved) or 'none yet'}; presets: {', '.join(PRESETS)}. "
        "Save one with 'python -m tlcore augment save NAME --from-file SPEC.yaml' or on the Augmentations page.",
    )


def save_pipeline(ws: Workspace, name: str, spec: AugmentSpec, *, overwrite: bool = False) -> Path:
    """Save ``spec`` as ``<workspace>/augmentations/<name>.yaml``, atomically.

    The file holds the spec (what the workbench reads back) and, for other tools,
    albumentations' own ``to_dict`` of the pipeline built at ``DEFAULT_IMAGE_SIZE``.

    Args:
        ws: the workspace.
        name: 1-64 letters, digits, '.', '_' or '-'; not a preset's name.
        spec: the pipeline.
        overwrite: replace a pipeline saved under that name. Defaults to False.

    Returns:
        The file's path.

    Raises:
        ConfigError: the name is invalid, a preset's, or taken (without ``overwrite``).
    """
    _check_pipeline_name(name)
    if not isinstance(spec, AugmentSpec):
        raise AugmentationError("save_pipeline needs an AugmentSpec.", received=type(spec).__name__)
    doc = {
        "format": _FORMAT,
        "name": name,
        "spec": spec.to_dict(),
        "albumentations_image_size": list(DEFAULT_IMAGE_SIZE),
        "albumentations": spec_to_albu_dict(spec),
    }
    path = ws.augmentations_dir / f"{name}.yaml"
    with ws.lock("augmentations"):
        if path.exists() and not overwrite:
            raise ConfigError(
                "A pipeline is already saved under that name.",
                received=repr(name),
                fix="Choose another name, or overwrite it (--overwrite, or tick 'Overwrite').",
            )
        atomic_write_yaml(path, doc)
    return path


def load_pipeline(ws: Workspace, name: str) -> AugmentSpec:
    """The spec of a saved pipeline.

    Raises:
        NotFoundError: nothing is saved under ``name`` (the message lists what is).
        AugmentationError: the file is damaged or holds an invalid pipeline.
    """
    if not isinstance(name, str) or name.lower() in PRESETS:
        raise _not_found(ws, name) if not isinstance(name, str) else NotFoundError(
            "That is a preset, not a saved pipeline.", received=repr(name), fix="Use get_spec(ws, name) for presets.")
    try:
        validate_name(name, "pipeline name")
    except ConfigError:
        raise _not_found(ws, name) from None
    path = _folder(ws) / f"{name}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _not_found(ws, name) from None
    except OSError as exc:
        raise WorkspaceError(f"Cannot read the saved pipeline {name!r}: {exc.strerror}.", received=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise AugmentationError(f"The saved pipeline {name!r} is invalid: it is not UTF-8 text.", received=str(path),
                                fix=f"Fix or delete {path}.") from exc
    try:
        return parse_spec_text(text, source="its text")  # "The saved pipeline 'x' is invalid: its text is ..."
    except AugmentationError as exc:
        raise AugmentationError(
            f"The saved pipeline {name!r} is invalid: {exc.message}",
            received=exc.received,
            fix=(exc.fix + " " if exc.fix else "") + f"Fix or delete {path}.",
        ) from exc


def delete_pipeline(ws: Workspace, name: str) -> None:
    """Delete a saved pipeline (presets cannot be deleted).

    Raises:
        NotFoundError: nothing is saved under ``name``.
        ConfigError: ``name`` is a preset.
    """
    if isinstance(name, str) and name.lower() in PRESETS:
        raise ConfigError("Presets are built in and cannot be deleted.", received=repr(name))
    try:
        validate_name(name, "pipeline name")
    except ConfigError:
        raise _not_found(ws, name) from None
    path = _folder(ws) / f"{name}.yaml"
    with ws.lock("augmentations"):
        try:
            path.unlink()
        except FileNotFoundError:
            raise _not_found(ws, name) from None
        except OSError as exc:
            raise WorkspaceError(f"Cannot delete the saved pipeline {name!r}: {exc.strerror}.", received=str(path)) from exc


def saved_pipeline_of(ws: Workspace, name: str | None) -> AugmentSpec | None:
    """The saved pipeline a spec's ``augment`` names, for a study or a training job to keep its own
    copy of; None when it names a preset or nothing (presets never change).

    Raises:
        NotFoundError: nothing is saved under ``name``.
        AugmentationError: the saved file is damaged.
    """
    if not name or name in PRESETS:
        return None
    return load_pipeline(ws, name)


def get_spec(ws: Workspace | None, name: str) -> AugmentSpec:
    """A preset or a saved pipeline, by name (presets first; saved ones cannot shadow them).

    Args:
        ws: the workspace holding saved pipelines; None for presets only.
        name: a preset ("none", "light", "medium", "heavy") or a saved pipeline's name.
    """
    if isinstance(name, str) and name in PRESETS:
        return preset_spec(name)
    if ws is None:
        raise NotFoundError("No augmentation preset has that name.", received=repr(name),
                            fix=f"Presets: {', '.join(PRESETS)}; pass a workspace for saved pipelines.")
    return load_pipeline(ws, name)
