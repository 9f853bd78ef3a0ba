"""Data-aware rounding of a model's weights to the int8 grid, before full-integer TFLite conversion.

TFLite's post-training int8 quantization rounds every convolution weight, with its
BatchNorm folded in, to the nearest step of a per-channel grid (symmetric, scale
``max |w| / 127``). Rounding to the nearest step is not the best choice when the steps
are coarse: EfficientNet-Lite0's stem folds BatchNorm gains up to 54 into filters of 27
weights, and nearest rounding alone moved one channel's output by 0.09 on a 0-6 range;
on the demo model, 4 of 70 test images changed class.

``round_for_int8`` changes a copy of the model so that TFLite's nearest rounding lands on
better integers. For every convolution followed by a BatchNormalization it chooses, per
output channel, each weight's integer from {floor, ceil} of ``w / scale``:

- to minimise ``|| X_q s k - X_f w ||²`` on real training images, from the nearest rounding,
  by a greedy coordinate descent (the per-layer objective of AdaRound, Nagel et al., ICML
  2020). X_q is the layer's input once the layers before it are rounded, X_f the float
  model's; both are centred, because the bias correction below removes the mean;
- keeping each channel's largest weight fixed, so the scale TFLite computes does not move;
- folding the mean output shift the rounding leaves into the channel's bias (bias
  correction, Nagel et al., ICCV 2019);
- where a ReLU6 follows, counting only the samples whose pre-activation lies in its window
  (outputs clipped either way do not change).

The weights written back are the chosen grid points unfolded, so the converter's folding
and rounding reproduce them exactly. On the demo model, no test image of 70 changes class,
against 4 with nearest rounding (``bench/bench_export.py``).

The float model is unchanged; only the int8 export uses the copy. Models without
convolution-BatchNorm pairs (or in a layout this does not recognise) are left alone and
the report says so.

Example:

>>> copy, report = round_for_int8(loaded.model, training_images[:32])
>>> report["layers"], report["images"]          # EfficientNet-Lite0
(49, 32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["round_for_int8", "ROUNDING_IMAGES", "INT8_ROUNDING"]

INT8_ROUNDING = ("data_aware", "nearest")
"""How an int8 export rounds the weights: data-aware (``round_for_int8``) or TFLite's nearest.
Here, not in ``tlcore.export``, so the CLI's parser can offer them without importing the export."""

ROUNDING_IMAGES = 32
"""Training images whose activations the rounding is fitted on."""
_SWEEPS = 8
_MAX_ROWS = 20_000  # activation patches per layer the objective is measured on (sampled)
_PER_CHANNEL_MAX_FAN_IN = 32  # regular convs with a ReLU6 window and a small fan-in get per-channel masks
_MIN_WINDOW_ROWS = 50
_GROUP_BYTES = 128 * 2**20  # float activations one prefix pass may hold (``_float_group``)
_GRID = 127.0


def _inbound(layer: Any) -> list[Any]:
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if len(nodes) != 1:
        return []
    return [p.operation for p in nodes[0].parent_nodes]


def _functional_models(model: Any) -> list[Any]:
    import keras

    out = [model]
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_functional_models(layer))
    return out


def _pairs(owner: Any) -> list[tuple[Any, Any, tuple[float, float] | None]]:
    """(conv, batchnorm, ReLU window or None) for each Conv2D / DepthwiseConv2D (depth multiplier 1)
    whose only consumer is a BatchNormalization in ``owner``'s own graph."""
    import keras

    found = []
    consumers: dict[int, list[Any]] = {}
    for layer in owner.layers:
        for parent in _inbound(layer):
            consumers.setdefault(id(parent), []).append(layer)
    for bn in owner.layers:
        if not isinstance(bn, keras.layers.BatchNormalization):
            continue
        parents = _inbound(bn)
        if len(parents) != 1:
            continue
        conv = parents[0]
        depthwise = isinstance(conv, keras.layers.DepthwiseConv2D)
        if not isinstance(conv, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) or \
                len(consumers.get(id(conv), [])) != 1 or getattr(conv, "groups", 1) != 1:
            continue
        if depthwise and conv.kernel.shape[-1] != 1:
            continue
        after = consumers.get(id(bn), [])
        window = None
        if len(after) == 1 and isinstance(after[0], keras.layers.ReLU) and after[0].max_value is not None \
                and not after[0].negative_slope and not after[0].threshold:
            window = (0.0, float(after[0].max_value))
        found.append((conv, bn, window))
    return found


def _patches(conv: Any, x: np.ndarray) -> np.ndarray:
    """A regular conv's input patches: rows (image, y, x) × fan-in. Depthwise convs: ``_DepthwiseTaps``."""
    import keras

    kh, kw = conv.kernel_size
    cin = x.shape[-1]
    if (kh, kw) == (1, 1) and tuple(conv.strides) == (1, 1):  # a pointwise conv's patches are its input
        return np.asarray(x, np.float32).reshape(-1, cin)
    eye = np.eye(kh * kw * cin, dtype=np.float32).reshape(kh, kw, cin, kh * kw * cin)
    common = {"strides": conv.strides, "padding": conv.padding, "dilation_rate": conv.dilation_rate}
    p = keras.ops.convert_to_numpy(keras.ops.conv(x, eye, **common))
    return p.reshape(-1, kh * kw * cin)


class _DepthwiseTaps:
    """A depthwise conv's input patches one channel at a time: ``channel(c)`` is rows × taps
    (float64; tap = ky * kernel width + kx), gathered from the padded input rather than computed
    for every channel and row at once (at 28 × 28 with 240 channels and 5 × 5 taps that is a
    gigabyte in float64, and writing it took longer than the rounding).

    ``rows``: indices into the conv's output positions (image, y, x in C order); None = all."""

    def __init__(self, conv: Any, x: np.ndarray, rows: np.ndarray | None):
        n, h, w, _ = x.shape
        kh, kw = conv.kernel_size
        (sh, sw), (dh, dw) = conv.strides, conv.dilation_rate
        if conv.padding == "same":  # as TensorFlow pads: the odd pixel after
            ho, wo = -(-h // sh), -(-w // sw)
            ph = max((ho - 1) * sh + (kh - 1) * dh + 1 - h, 0)
            pw = max((wo - 1) * sw + (kw - 1) * dw + 1 - w, 0)
            x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        else:
            ho, wo = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1
        hp, wp = x.shape[1:3]
        self.channels = np.ascontiguousarray(np.moveaxis(x, -1, 0), np.float32).reshape(x.shape[-1], -1)
        rows = np.arange(n * ho * wo) if rows is None else np.asarray(rows)
        img, rest = np.divmod(rows, ho * wo)
        y, xo = np.divmod(rest, wo)
        ty, tx = np.divmod(np.arange(kh * kw), kw)
        self.index = ((img * hp * wp)[:, None] + (y[:, None] * sh + ty * dh) * wp + xo[:, None] * sw + tx * dw)

    def channel(self, c: int) -> np.ndarray:
        return self.channels[c][self.index].astype(np.float64)


def _descend(w: np.ndarray, gram: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Integer grid points for the columns of ``w`` (fan-in × channels): minimise
    ``|| X_q s k - X_f w ||²`` over k in {floor, ceil}(w / s), given ``gram`` = X_qᵀX_q and
    ``target`` = X_qᵀX_f w (X_q: the layer's input with the earlier layers already rounded, X_f:
    the float model's). From nearest rounding, single weights flip while the error drops; each
    column's largest |w| stays at ±127 so its scale is unchanged. Returns q = s k."""
    s = np.abs(w).max(axis=0) / _GRID
    s = np.where(s > 0, s, 1.0)
    k = np.round(w / s)
    lo, hi = np.floor(w / s), np.ceil(w / s)
    pinned = np.argmax(np.abs(w), axis=0)
    grad = gram @ (s * k) - target
    for _ in range(_SWEEPS):
        changed = False
        for i in range(w.shape[0]):
            other = np.where(k[i] == lo[i], hi[i], lo[i])
            step = s * (other - k[i])
            gain = 2 * step * grad[i] + step * step * gram[i, i]
            take = (gain < -1e-12) & (lo[i] != hi[i]) & (pinned != i)
            if not take.any():
                continue
            step = np.where(take, step, 0.0)
            k[i] = np.where(take, other, k[i])
            grad += np.outer(gram[:, i], step)
            changed = True
        if not changed:
            break
    return s * k


def _objective(xq: np.ndarray, xf: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Gram matrix and target of ``_descend`` on centred inputs: the bias correction takes the
    error's mean out afterwards, so only the error around it is worth minimising."""
    xq = xq - xq.mean(axis=0)
    xf = xf - xf.mean(axis=0)
    # X_qᵀ X_f w in the cheaper order: rows × fan-in² against rows × fan-in × channels
    target = (xq.T @ xf) @ w if xq.shape[1] < w.shape[1] else xq.T @ (xf @ w)
    return xq.T @ xq, target


def _mean_shift(xq: np.ndarray, xf: np.ndarray, q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The mean of ``X_q q - X_f w`` over the rows (the bias correction), from the inputs' means."""
    return xq.mean(axis=0) @ q - xf.mean(axis=0) @ w


def _round_pair(conv: Any, bn: Any, window: tuple[float, float] | None, x_float: np.ndarray,
                x_rounded: np.ndarray, pre: np.ndarray, rng: np.random.Generator) -> bool:
    """Round one conv (BatchNorm folded) in place; returns whether it was changed.

    ``x_float``/``x_rounded``: the conv's input in the float model and in the copy with the
    earlier layers rounded; ``pre``: the float conv's output (before BatchNorm); all three for
    the images ``_layer_images`` picks."""
    import keras

    gamma = keras.ops.convert_to_numpy(bn.gamma) if bn.scale else np.ones(bn.moving_mean.shape, np.float32)
    mean = keras.ops.convert_to_numpy(bn.moving_mean)
    var = keras.ops.convert_to_numpy(bn.moving_variance)
    fold = (gamma / np.sqrt(var + bn.epsilon)).astype(np.float64)
    if not np.all(np.isfinite(fold)) or np.any(fold == 0):
        return False
    kernel = keras.ops.convert_to_numpy(conv.kernel).astype(np.float64)
    depthwise = isinstance(conv, keras.layers.DepthwiseConv2D)
    pre_act = pre.reshape(-1, pre.shape[-1])
    pick = rng.choice(len(pre_act), size=_MAX_ROWS, replace=False) if len(pre_act) > _MAX_ROWS else None
    if pick is not None:
        pre_act = pre_act[pick]
    pre_act = pre_act.astype(np.float64)
    if depthwise:
        pf, pq = _DepthwiseTaps(conv, x_float, pick), _DepthwiseTaps(conv, x_rounded, pick)
    else:
        pf, pq = _patches(conv, x_float), _patches(conv, x_rounded)
        if pick is not None:  # sampled before the float64 copies: those of every row cost more than the rest
            pf, pq = pf[pick], pq[pick]
        pf, pq = pf.astype(np.float64), pq.astype(np.float64)
    shift = np.zeros(len(fold))
    new_kernel = kernel.copy()
    channels = kernel.shape[2] if depthwise else kernel.shape[-1]
    per_channel = depthwise or (window is not None and pf.shape[1] <= _PER_CHANNEL_MAX_FAN_IN)
    if per_channel:
        folded_pre = np.ascontiguousarray((pre_act * fold + (_beta(bn) - mean * fold)).T)  # channel-major
        for c in range(channels):
            w = (kernel[:, :, c, 0] if depthwise else kernel[..., c]).reshape(-1, 1) * fold[c]
            xf = pf.channel(c) if depthwise else pf
            xq = pq.channel(c) if depthwise else pq
            if window is not None:
                keep = (folded_pre[c] > window[0] - 0.5) & (folded_pre[c] < window[1] + 0.5)
                if keep.sum() >= _MIN_WINDOW_ROWS:  # else a channel almost always clipped: every row counts
                    xf, xq = xf[keep], xq[keep]
            q = _descend(w, *_objective(xq, xf, w))
            shift[c] = float(_mean_shift(xq, xf, q, w)[0])
            unfolded = (q[:, 0] / fold[c]).reshape(kernel.shape[:2] if depthwise else kernel.shape[:3])
            if depthwise:
                new_kernel[:, :, c, 0] = unfolded
            else:
                new_kernel[..., c] = unfolded
    else:
        w = kernel.reshape(-1, channels) * fold
        q = _descend(w, *_objective(pq, pf, w))
        shift = _mean_shift(pq, pf, q, w)
        new_kernel = (q / fold).reshape(kernel.shape)
    conv.kernel.assign(new_kernel.astype(np.float32))
    # bias correction: the rounding's mean output shift, taken out where the channel's offset lives
    if conv.use_bias:
        conv.bias.assign((keras.ops.convert_to_numpy(conv.bias) - shift / fold).astype(np.float32))
    elif bn.center:
        bn.beta.assign((_beta(bn) - shift).astype(np.float32))
    return True


def _beta(bn: Any) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(bn.beta).astype(np.float64) if bn.center else \
        np.zeros(bn.moving_mean.shape, np.float64)


def _layer_images(n: int, conv: Any) -> np.ndarray:
    """Which of ``n`` images a conv's rounding looks at: enough, evenly spread, for the rows the
    objective samples (``_MAX_ROWS``, twice over). A layer at 112 × 112 needs 4 of them, so its
    patches (rows × fan-in) stay a few hundred MB, not gigabytes."""
    per_image = max(1, int(np.prod(conv.output.shape[1:-1])))
    take = min(n, max(4, -(-2 * _MAX_ROWS // per_image)))
    return np.unique(np.linspace(0, n - 1, take).round().astype(int))


def _prefix(owner: Any, tensors: list[Any], x: np.ndarray) -> list[np.ndarray]:
    """``tensors`` of ``owner``'s graph when it sees ``x``, computed eagerly a batch at a time.

    Eagerly, because each such prefix model is used once: ``predict`` would trace a graph for
    each (most of the rounding's time when it did). Only the images a layer needs go through
    (``_layer_images``), and only the tensors it needs come back: materialising every conv's
    input and output for every image (1.7 GB at 224 px) took longer than the rounding itself."""
    return _run(list(owner.inputs), list(tensors), [x] * len(owner.inputs))


def _float_group(float_pairs: list[tuple[Any, Any, Any]], picks: list[np.ndarray], start: int) -> list[int]:
    """The convs from ``start`` on whose float inputs and outputs one prefix pass computes: the
    next ones that look at the same images, while their activations stay under ``_GROUP_BYTES``
    (at 224 px the 39 convs at 28, 14 and 7 px all take every image: 0.7 GB of activations, which
    one pass would hold about twice over)."""
    def nbytes(j: int) -> int:
        conv = float_pairs[j][0]
        return 4 * len(picks[j]) * sum(int(np.prod(t.shape[1:])) for t in (conv.input, conv.output))

    group, size = [start], nbytes(start)  # the first is needed, whatever its size
    for j in range(start + 1, len(float_pairs)):
        size += nbytes(j)
        if not np.array_equal(picks[j], picks[start]) or size > _GROUP_BYTES:
            break
        group.append(j)
    return group


_KEEP_INPUTS = 4  # the copy's latest conv inputs ``_RoundedInputs`` keeps (a block's input is 3 convs back)


class _RoundedInputs:
    """Each conv's input in the copy as its earlier convs are rounded, computed from the inputs of
    the last convs already worked out for the same images rather than from the model's input.

    The convs are rounded in graph order, so a conv's input, once computed, depends on rounded
    convs only and stays right for the rest of the rounding. Going back from the conv's input
    through the graph, the walk stops at those known inputs (a residual branch reaches the input
    of its block) or at the model's input, and only the layers in between run."""

    def __init__(self, owner: Any):
        self.owner = owner
        self.images: np.ndarray | None = None
        self.known: dict[int, tuple[Any, np.ndarray]] = {}  # id(tensor) -> (tensor, value), in order

    def __call__(self, conv: Any, seen: np.ndarray, which: np.ndarray) -> np.ndarray:
        if self.images is None or not np.array_equal(which, self.images):
            self.images, self.known = which, {}
        target = conv.input
        if id(target) in self.known:
            return self.known[id(target)][1]
        start = {id(t): (t, seen) for t in self.owner.inputs}
        frontier: dict[int, tuple[Any, np.ndarray]] = {}
        stack, visited = [target], set()
        while stack:
            t = stack.pop()
            if id(t) in visited:
                continue
            visited.add(id(t))
            if id(t) in self.known or id(t) in start:
                frontier[id(t)] = self.known.get(id(t)) or start[id(t)]
                continue
            op, node_index, _ = t._keras_history
            stack.extend(op._inbound_nodes[node_index].input_tensors)
        tensors = [t for t, _ in frontier.values()]
        value = _run(tensors, [target], [v for _, v in frontier.values()])[0]
        self.known[id(target)] = (target, value)
        while len(self.known) > _KEEP_INPUTS:
            self.known.pop(next(iter(self.known)))
        return value


def _run(inputs: list[Any], outputs: list[Any], values: list[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
    """``outputs`` of the graph between the tensors ``inputs`` (given ``values``) and them, computed
    eagerly a batch at a time."""
    import keras

    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, list(outputs))
    parts: list[list[np.ndarray]] = [[] for _ in outputs]
    for i in range(0, len(values[0]), batch_size):
        batch = [v[i : i + batch_size] for v in values]
        outs = model(batch[0] if len(batch) == 1 else batch, training=False)
        for part, out in zip(parts, outs if isinstance(outs, (list, tuple)) else [outs]):
            part.append(keras.ops.convert_to_numpy(out))
    return [np.concatenate(p) for p in parts]


def _owner_input(model: Any, owner: Any, images: np.ndarray) -> np.ndarray | None:
    """What ``owner`` (the model or a model nested in it) receives when ``model`` sees ``images``."""
    import keras

    if owner is model:
        return images
    nodes = getattr(owner, "_inbound_nodes", None) or []
    for node in nodes:
        tensors = list(node.input_tensors)
        if len(tensors) == 1:
            try:
                feed = keras.Model(model.inputs, tensors[0])
            except (ValueError, TypeError):
                continue
            return np.asarray(feed.predict(images, batch_size=8, verbose=0))
    return None


def round_for_int8(model: Any, images: np.ndarray, *, log: Callable[[str], None] | None = None
                   ) -> tuple[Any, dict[str, Any]]:
    """A copy of ``model`` whose convolution weights TFLite's int8 conversion rounds better.

    Args:
        model: a Keras model (unchanged).
        images: training images as the model takes them (N×S×S×3, 0-255); ``ROUNDING_IMAGES``
            is plenty.
        log: called with a line per model part rounded.

    Returns:
        ``(copy, report)``; ``report``: ``method``, ``images``, ``layers`` (rounded),
        ``skipped`` (convolutions with a BatchNorm left as they were) and ``note`` when
        nothing could be rounded.
    """
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    x = np.asarray(images, dtype=np.float32)
    report: dict[str, Any] = {"method": "data-aware rounding (AdaRound's per-layer objective, greedy) and bias "
                                        "correction", "images": int(len(x)), "layers": 0, "skipped": 0}
    rng = np.random.default_rng(0)
    for owner, float_owner in zip(_functional_models(copy), _functional_models(model)):  # same structure
        pairs = _pairs(owner)
        float_pairs = _pairs(float_owner)
        if not pairs:
            continue
        feed = _owner_input(copy, owner, x)
        if feed is None or len(float_pairs) != len(pairs):
            report["skipped"] += len(pairs)
            continue
        # each conv's input and output in the float model, and its input in the copy once the convs
        # before it are rounded, so that each layer makes up for their error. The float model does
        # not change, so one pass gives those of the next convs that look at the same images
        # (``_float_group``); the copy's must follow each rounding, so each is computed from the
        # inputs of the convs just before it (``_RoundedInputs``).
        picks = [_layer_images(len(feed), conv) for conv, _, _ in pairs]
        float_acts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        rounded_input = _RoundedInputs(owner)
        for i, (conv, bn, window) in enumerate(pairs):
            seen = feed[picks[i]]
            if i not in float_acts:
                group = _float_group(float_pairs, picks, i)
                outs = _prefix(float_owner, [t for j in group for t in (float_pairs[j][0].input,
                                                                       float_pairs[j][0].output)], seen)
                float_acts.update({j: (outs[2 * k], outs[2 * k + 1]) for k, j in enumerate(group)})
            x_float, pre = float_acts.pop(i)
            x_rounded = rounded_input(conv, seen, picks[i])
            if _round_pair(conv, bn, window, x_float, x_rounded, pre, rng):
                report["layers"] += 1
            else:
                report["skipped"] += 1
        if log is not None:
            log(f"{owner.name}: rounded {report['layers']} convolution(s) on {len(x)} images")
    if not report["layers"]:
        report["note"] = "no convolution followed by a BatchNorm was found: nearest rounding throughout"
    return copy, report
