"""tlcore.startup: a background process's log starts without the CPU-only backend noise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tlcore import startup

NOISE_LINES = [
    "E0000 00:00:1796228608.774398   10687 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "I0000 00:00:1796228603.845501   10687 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796228603.844075   10687 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
]
REAL_LINES = [
    "Traceback (most recent call last):",
    "ImportError: libcudnn.so.9: cannot open shared object file",
    "W0000 tensorflow/core/framework/op_kernel.cc:1857] OP_REQUIRES failed at xla_ops.cc: RESOURCE_EXHAUSTED",
]


@pytest.mark.parametrize("line", NOISE_LINES)
def test_the_cpu_only_start_up_lines_are_noise(line):
    assert startup.is_noise(line)


@pytest.mark.parametrize("line", REAL_LINES)
def test_other_lines_are_not_noise(line):
    assert not startup.is_noise(line)


def _fake_start(gpu: bool):
    def start() -> bool:
        os.write(2, ("\n".join(NOISE_LINES[:2] + REAL_LINES[1:2]) + "\n").encode())
        return gpu
    return start


def test_without_a_gpu_only_the_noise_is_dropped(monkeypatch, capfd):
    monkeypatch.setattr(startup, "backend_sees_gpu", _fake_start(False))
    assert startup.start_backend_quietly() is False
    err = capfd.readouterr().err
    assert err.splitlines() == REAL_LINES[1:2]


def test_with_a_gpu_every_line_is_kept(monkeypatch, capfd):
    monkeypatch.setattr(startup, "backend_sees_gpu", _fake_start(True))
    assert startup.start_backend_quietly() is True
    assert capfd.readouterr().err.splitlines() == NOISE_LINES[:2] + REAL_LINES[1:2]


def test_an_error_during_the_start_still_reaches_stderr_and_stderr_is_restored(monkeypatch, capfd):
    def broken() -> bool:
        os.write(2, b"ImportError: no backend\n")
        raise ImportError("no backend")

    monkeypatch.setattr(startup, "backend_sees_gpu", broken)
    with pytest.raises(ImportError):
        startup.start_backend_quietly()
    os.write(2, b"after\n")
    assert capfd.readouterr().err.splitlines() == ["ImportError: no backend", "after"]


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(startup.__file__)))


def test_a_real_backend_start_writes_no_noise():
    """The real thing, in fresh interpreters: the same start with and without the filter."""
    plain = _run("from tlcore.startup import backend_sees_gpu as s; print(s())")
    quiet = _run("from tlcore.startup import start_backend_quietly as s; print(s())")
    assert plain.returncode == 0 and quiet.returncode == 0, plain.stderr + quiet.stderr
    if plain.stdout.strip() == "True":
        pytest.skip("this machine has a GPU: nothing is filtered")
    noise = [line for line in plain.stderr.splitlines() if startup.is_noise(line)]
    if not noise:
        pytest.skip("this backend build writes no start-up noise here")
    assert quiet.stdout.strip() == "False"
    assert [line for line in quiet.stderr.splitlines() if startup.is_noise(line)] == []


def _noise_free(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if startup.is_noise(line)] == []


def test_the_scout_and_the_audit_start_the_backend_quietly():
    """``runtime.configure`` is where their first Keras import happens."""
    _noise_free(_run("from tlcore.runtime import configure; configure(); import keras"))


def test_the_cli_starts_the_backend_quietly(tmp_path):
    """``predict`` (as ``train``, ``export`` and ``models evaluate``): the model's lines, no CUDA noise."""
    from tests.helpers.handmodel import channel_model, write_model_folder
    from tests.helpers.runs import TINY_CLASSES, write_tinted_tree

    model = write_model_folder(tmp_path / "ws" / "models" / "hand", channel_model(3, 8), TINY_CLASSES)
    image = write_tinted_tree(tmp_path / "photos", per_class=1) / "cat" / "cat_000.png"
    done = _run(f"from tlcore.cli import main; raise SystemExit(main(['--workspace', {str(tmp_path / 'ws')!r}, "
                f"'predict', {str(model)!r}, {str(image)!r}]))")
    _noise_free(done)
    assert done.stdout.startswith(f"{image}: ")
