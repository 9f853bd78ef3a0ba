import os

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
