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
