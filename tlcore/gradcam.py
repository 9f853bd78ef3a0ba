"""Grad-CAM for the workbench's classifiers, computed exactly and without autodiff.

Grad-CAM (Selvaraju et al., 2017) explains the score ``y_c`` of class ``c`` with
the last feature map ``A`` (``h × w × K``, here the backbone's output, the tensor
entering the ``pool`` layer): each channel ``k`` gets the weight

    α_k^c = 1/(h·w) · Σ_ij ∂y_c / ∂A_ij^k

and the map is ``ReLU(Σ_k α_k^c · A^k)``, upsampled to the image and normalised.

Our head is ``GlobalAveragePooling2D → Dropout → Dense (linear) → softmax``, so
the pre-softmax score is

    y_c = Σ_k W_kc · (1/(h·w)) Σ_ij A_ij^k + b_c

(Dropout is the identity at inference). Its gradient with respect to ``A_ij^k``
is ``W_kc / (h·w)`` at every position, hence ``α_k^c = W_kc / (h·w)``: the dense
kernel's column, up to a positive constant that normalisation removes. So

    heatmap_c = ReLU(Σ_k W_kc · A^k) / max(ReLU(Σ_k W_kc · A^k))

is *exactly* Grad-CAM (this is the Class Activation Map of Zhou et al., 2016, which
Grad-CAM reduces to for such heads). It needs one forward pass of the feature
model and a matrix product, no gradient tape, so it works the same under every
Keras backend (TensorFlow, JAX, PyTorch). ``tests/test_gradcam.py`` checks it
against autodiff Grad-CAM with ``tf.GradientTape``.

The map has the backbone's output resolution (``S/32`` for EfficientNet-Lite0,
e.g. 7×7 at 224 px) and is upsampled bilinearly to ``S × S``, the model's input.

It works on any model ``tlcore.model.Classifier`` built (as loaded by
``tlcore.predict.load_model``); the Predict and Results pages use it through
``tlui.data`` and ``tlui.results_widgets``.

Example:

>>> cam = GradCam(loaded.model)
>>> result = cam.explain(x)                      # x: N×S×S×3 raw RGB 0-255
>>> rgb = overlay(x[0].astype("uint8"), result.heatmaps[0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tlcore.calibration import apply_temperature
from tlcore.errors import ConfigError

__all__ = ["GradCam", "GradCamResult", "gradcam", "overlay", "colormap"]

_POOL, _DENSE = "pool", "classifier"


@dataclass(frozen=True)
class GradCamResult:
    """Grad-CAM of a batch of images.

    Attributes:
        heatmaps: N×S×S float32 in [0, 1] (all zero where no region supports the class).
        class_indices: N, the class each map explains.
        probabilities: N×C, the model's softmax output for the same images (scaled by
            the explainer's calibration temperature, if any).
        raw: N×h×w float32, the normalised maps at the feature map's resolution.
    """

    heatmaps: np.ndarray
    class_indices: np.ndarray
    probabilities: np.ndarray
    raw: np.ndarray


class GradCam:
    """Grad-CAM for a classifier built by ``tlcore.model.Classifier`` (or loaded from a run).

    Builds, once, a model from the classifier's input to both the feature map that
    enters its ``pool`` layer and its probabilities; reads the ``classifier`` Dense
    kernel. The classifier itself is not changed.

    Args:
        model: the ``keras.Model`` (raw S×S×3 in; ``pool`` → ``head_dropout`` →
            ``classifier`` → ``probabilities`` at the end).
        temperature: the calibration temperature applied to the probabilities it
            returns (``tlcore.calibration.apply_temperature``; pass
            ``LoadedModel.temperature``). Defaults to 1.0: the model's raw softmax.

    Raises:
        ConfigError: the model does not have that head.
    """

    def __init__(self, model, *, temperature: float = 1.0):
        import keras

        try:
            pool = model.get_layer(_POOL)
            dense = model.get_layer(_DENSE)
        except ValueError as exc:
            raise ConfigError(
                "Grad-CAM needs a classifier with the workbench's head (layers 'pool' and 'classifier').",
                received=f"layers {[layer.name for layer in model.layers][-6:]}",
                fix="Use a model trained by this workbench.",
            ) from exc
        if not isinstance(pool, keras.layers.GlobalAveragePooling2D) or not isinstance(dense, keras.layers.Dense):
            raise ConfigError(
                "Grad-CAM needs 'pool' to be GlobalAveragePooling2D and 'classifier' a Dense layer.",
                received=f"pool={type(pool).__name__}, classifier={type(dense).__name__}",
                fix="Use a model trained by this workbench.",
            )
        if dense.activation not in (None, keras.activations.linear):
            raise ConfigError("Grad-CAM expects a linear 'classifier' layer followed by the softmax.",
                              received=f"activation={dense.activation}")
        fmap = pool.input
        if len(fmap.shape) != 4:
            raise ConfigError("The tensor entering 'pool' must be a feature map (batch, h, w, channels).",
                              received=f"shape={tuple(fmap.shape)}")
        self._model = keras.Model(model.inputs[0], [fmap, model.outputs[0]], name="gradcam_features")
        self.kernel = keras.ops.convert_to_numpy(dense.kernel).astype(np.float32)  # K × C
        self.image_size = int(model.inputs[0].shape[1])
        self.temperature = float(temperature)

    @property
    def num_classes(self) -> int:
        return int(self.kernel.shape[1])

    def explain(self, x: np.ndarray, class_indices: int | np.ndarray | list[int] | None = None,
                *, batch_size: int = 32) -> GradCamResult:
        """Grad-CAM heatmaps (and probabilities) for a batch of prepared images.

        Args:
            x: N×S×S×3 raw RGB 0-255 (uint8 or float), already resized, e.g. by
                ``tlcore.predict.prepare_image``.
            class_indices: the class to explain, one for all images or one per image.
                Defaults to None: each image's predicted (most probable) class.
            batch_size: images per model call. Defaults to 32.

        Returns:
            A ``GradCamResult``.
        """
        from tlcore.runtime import forward_batches

        x = np.asarray(x)
        if x.ndim == 3:
            x = x[None]
        s = self.image_size
        if x.ndim != 4 or x.shape[1:] != (s, s, 3):
            raise ConfigError("Grad-CAM needs images prepared at the model's size: N×S×S×3.",
                              received=f"shape={x.shape}, S={s}",
                              fix="Prepare them with tlcore.predict.prepare_image.")
        if len(x):
            fmap, prob = (np.asarray(a, dtype=np.float32) for a in forward_batches(self._model, x, batch_size))
        else:
            fmap = np.zeros((0, 1, 1, self.kernel.shape[0]), np.float32)
            prob = np.zeros((0, self.num_classes), np.float32)
        prob = apply_temperature(prob, self.temperature)  # T = 1: unchanged; the argmax never changes
        if class_indices is None:
            cls = prob.argmax(axis=1)
        else:
            cls = np.broadcast_to(np.asarray(class_indices, dtype=np.int64), (len(x),)).copy()
            if np.any((cls < 0) | (cls >= self.num_classes)):
                raise ConfigError(f"class_indices must lie in 0..{self.num_classes - 1}.",
                                  received=f"class_indices={np.asarray(class_indices).tolist()}")
        raw = cam_from_features(fmap, self.kernel, cls)
        heat = np.stack([_upsample(m, s) for m in raw]) if len(raw) else np.zeros((0, s, s), np.float32)
        return GradCamResult(heatmaps=heat, class_indices=cls, probabilities=prob, raw=raw)


def cam_from_features(fmap: np.ndarray, kernel: np.ndarray, class_indices: np.ndarray) -> np.ndarray:
    """``ReLU(Σ_k W[k, c] · A[..., k])`` per image, divided by its maximum (N×h×w, in [0, 1])."""
    weights = kernel[:, class_indices].T  # N × K
    cam = np.einsum("nhwk,nk->nhw", fmap.astype(np.float64), weights.astype(np.float64))
    cam = np.maximum(cam, 0.0)
    peak = cam.reshape(len(cam), -1).max(axis=1) if len(cam) else np.zeros(0)
    scale = np.where(peak > 0, 1.0 / np.where(peak > 0, peak, 1.0), 0.0)
    return (cam * scale[:, None, None]).astype(np.float32)


def _upsample(cam: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an h×w map to size×size (values stay within [0, 1])."""
    if cam.shape == (size, size):
        return cam.astype(np.float32)
    im = Image.fromarray(np.ascontiguousarray(cam, dtype=np.float32), mode="F")
    out = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def gradcam(model, images: np.ndarray, class_index: int | None = None) -> np.ndarray:
    """Grad-CAM heatmaps (N×S×S in [0, 1]) of prepared images; see ``GradCam.explain``.

    Builds the feature model on every call: keep a ``GradCam`` to explain many batches.
    """
    return GradCam(model).explain(images, class_index).heatmaps


# ---------------------------------------------------------------- colours
# Jet, the classic Grad-CAM colormap, from its closed form: three clipped ramps,
# dark blue (0) → blue → cyan → yellow → red → dark red (1). Tabulated at 256 levels.
def _jet_table() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)[:, None]
    centres = np.array([[3.0, 2.0, 1.0]])  # R, G, B peaks at x = 3/4, 1/2, 1/4
    rgb = np.clip(1.5 - np.abs(4.0 * x - centres), 0.0, 1.0)
    return np.rint(rgb * 255.0).astype(np.uint8)


_JET = _jet_table()


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with the jet colormap (dark blue = 0, red = 1)."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0)
    return _JET[np.rint(v * 255).astype(np.int64)]


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a heatmap, coloured with ``colormap``, over an RGB image.

    Args:
        image: H×W×3 uint8 (or H×W grayscale).
        heatmap: h×w values in [0, 1]; resized bilinearly to H×W when the sizes differ.
        alpha: the heatmap's opacity, 0 (image only) to 1 (heatmap only). Defaults to 0.4.

    Returns:
        H×W×3 uint8.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ConfigError("alpha must be a number in [0, 1].", received=f"alpha={alpha!r}")
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ConfigError("overlay needs an H×W×3 uint8 image.",
                          received=f"shape={img.shape}, dtype={img.dtype}")
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ConfigError("overlay needs a 2-D heatmap.", received=f"shape={heat.shape}")
    h, w = img.shape[:2]
    if heat.shape != (h, w):
        im = Image.fromarray(np.ascontiguousarray(heat), mode="F")
        heat = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
    colours = colormap(heat).astype(np.float32)
    out = (1.0 - alpha) * img.astype(np.float32) + alpha * colours
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
