"""What a short trial pays before its first step: TensorFlow tracing the training step.

Trains the trainable part of EfficientNet-Lite0 (random weights, 96 px, 10 classes)
above each freeze depth on cached-size inputs for two epochs of ``--batches``
batches of 32 (with validation, as the trainer does) and prints, per depth, the
first epoch's time (tracing + steps), the second's (steps only) and how many
times the training step was traced. ``--variant default`` is Keras's own
behaviour: the optimizer's and the metrics' variables are created inside the
first traced step, which makes TensorFlow trace it twice; ``--variant built``
creates them first (``tlcore.trainer._build_state``), as the trainer does.

Usage (both at once, one core each):
    taskset -c 0 python bench/bench_trace.py --variant default &
    taskset -c 1 python bench/bench_trace.py --variant built
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["default", "built"], default="built")
    ap.add_argument("--depths", default="1,7,13")
    ap.add_argument("--batches", type=int, default=9, help="training batches per epoch (a 11 %% rung of 2,562 images: 9)")
    args = ap.parse_args()

    import keras
    import numpy as np

    from tlcore.model import Classifier
    from tlcore.runtime import configure
    from tlcore.trainer import _build_state

    configure()
    rng = np.random.default_rng(0)
    for depth in (int(d) for d in args.depths.split(",")):
        keras.backend.clear_session()
        clf = Classifier.build("efficientnet_lite0", num_classes=10, image_size=96, weights=None)
        clf.set_freeze_depth(depth, batchnorm="train")
        prefix, trainable = clf.split(depth)
        n = 32 * args.batches - 3  # a partial last batch, as a rung has
        x = np.asarray(prefix(rng.uniform(0, 255, (n, 96, 96, 3)).astype("float32"), training=False))
        y = keras.utils.to_categorical(rng.integers(0, 10, n), 10)
        xv, yv = x[:64], y[:64]
        trainable.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                          metrics=["accuracy"], jit_compile=False)
        if args.variant == "built":
            _build_state(trainable, (xv, yv))
        traces = []
        step = trainable.train_step

        def counted(data, step=step, traces=traces):
            traces.append(1)  # runs only while TensorFlow traces the step
            return step(data)

        trainable.train_step = counted
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            trainable.fit(x, y, batch_size=32, epochs=1, verbose=0, validation_data=(xv, yv))
            times.append(time.perf_counter() - t0)
        print(json.dumps({"variant": args.variant, "depth": depth, "trainable_variables": len(trainable.trainable_variables),
                          "first_epoch_s": round(times[0], 2), "second_epoch_s": round(times[1], 2),
                          "train_step_traces": len(traces), "cpu_affinity": sorted(os.sched_getaffinity(0))}),
              flush=True)


if __name__ == "__main__":
    main()
