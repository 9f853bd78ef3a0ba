import os

import numpy as np
import pytest

from tlcore import runtime
from tlcore.errors import ConfigError


def test_cpu_threads_defaults_to_every_core(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    assert runtime.cpu_threads() == (os.cpu_count() or 1)


def test_cpu_threads_from_the_environment(monkeypatch):
    monkeypatch.setenv(runtime.THREADS_ENV, " 3 ")
    assert runtime.cpu_threads() == 3


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_a_bad_thread_count_says_what_to_set(monkeypatch, bad):
    monkeypatch.setenv(runtime.THREADS_ENV, bad)
    with pytest.raises(ConfigError) as err:
        runtime.cpu_threads()
    text = str(err.value)
    assert "TLCORE_CPU_THREADS" in text and repr(bad) in text


def _backend_in_a_fresh_process(env: dict[str, str]) -> tuple[str, bool]:
    """backend_name() in a process that never imported Keras, and whether it imported Keras."""
    import subprocess
    import sys

    code = ("import sys; from tlcore.runtime import backend_name; "
            "print(backend_name(), 'keras' in sys.modules)")
    clean = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "KERAS_HOME")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    name, loaded = out.stdout.split()
    return name, loaded == "True"


def test_backend_name_reads_what_keras_would_without_importing_it(tmp_path):
    """The Results page offers the formats of the backend without waiting for TensorFlow to start."""
    (tmp_path / "keras.json").write_text('{"backend": "jax", "floatx": "float32"}')
    assert _backend_in_a_fresh_process({"KERAS_HOME": str(tmp_path)}) == ("jax", False)
    assert _backend_in_a_fresh_process({"KERAS_HOME": str(tmp_path), "KERAS_BACKEND": "torch"}) == ("torch", False)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _backend_in_a_fresh_process({"KERAS_HOME": str(empty)}) == ("tensorflow", False)
    (empty / "keras.json").write_text("not json")
    assert _backend_in_a_fresh_process({"KERAS_HOME": str(empty)}) == ("tensorflow", False)


def test_backend_name_is_keras_own_once_keras_is_loaded():
    import keras

    assert runtime.backend_name() == keras.backend.backend()


def _two_output_model():
    import keras

    inp = keras.Input((6, 6, 3))
    fmap = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    norm = keras.layers.BatchNormalization(name="bn")(fmap)  # training=False: its moving statistics, unchanged
    probs = keras.layers.Dense(5, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D()(norm))
    return keras.Model(inp, [norm, probs])


@pytest.mark.backend
@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_forward_batches_gives_the_plain_calls_outputs_in_order(batch_size):
    """Each row's outputs are the plain call's, whatever the batch size (7 rows: a short last batch at 3)."""
    model = _two_output_model()
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(4, 0.5, np.float32))
    bn.moving_variance.assign(np.full(4, 2.0, np.float32))
    x = np.random.default_rng(0).uniform(0, 255, (7, 6, 6, 3)).astype(np.uint8)
    fmap, probs = runtime.forward_batches(model, x, batch_size)
    want = [np.asarray(o) for o in model(x.astype(np.float32), training=False)]
    assert fmap.shape == (7, 6, 6, 4) and probs.shape == (7, 5)
    np.testing.assert_allclose(fmap, want[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(probs, want[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(bn.moving_mean), np.full(4, 0.5, np.float32))


@pytest.mark.backend
def test_forward_batches_reports_progress_and_single_outputs_are_one_array():
    import keras

    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2, name="d")(inp))
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    seen = []
    out = runtime.forward_batches(model, x, 4, on_batch=lambda done, total: seen.append((done, total)))
    assert isinstance(out, np.ndarray) and out.shape == (10, 2)
    np.testing.assert_allclose(out, np.asarray(model(x)), rtol=1e-6, atol=1e-5)
    assert seen == [(4, 10), (8, 10), (10, 10)]


@pytest.mark.backend
def test_on_jax_the_forward_pass_is_compiled_once_for_every_batch():
    """Keras' plain call on JAX runs op by op (30-57 s for 1,000 images on an H200); one jitted program
    serves every batch, the short last one padded to the same shape."""
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("the compiled path is JAX's; TensorFlow keeps its eager call")
    model = _two_output_model()
    x = np.random.default_rng(1).uniform(0, 255, (10, 6, 6, 3)).astype(np.float32)
    runtime.forward_batches(model, x, 4)  # batches of 4, 4 and 2 (padded to 4)
    assert runtime._JAX_FORWARD[model]._cache_size() == 1
    model.get_layer("head").kernel.assign(np.zeros((4, 5), np.float32))  # new weights, same program
    _, probs = runtime.forward_batches(model, x, 4)
    np.testing.assert_allclose(probs, 0.2, atol=1e-6)
    assert runtime._JAX_FORWARD[model]._cache_size() == 1


@pytest.mark.backend
def test_on_jax_the_compiled_pass_does_not_keep_its_model_alive():
    """The Streamlit server and search workers build many models; each one's program goes with it."""
    import gc

    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("the compiled path is JAX's")
    import weakref

    model = _two_output_model()
    runtime.forward_batches(model, np.zeros((3, 6, 6, 3), np.float32), 2)
    assert model in runtime._JAX_FORWARD
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None
