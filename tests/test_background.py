"""tlcore.background: a finished background process is reaped by whoever started it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tlcore import background


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # gone: reaped
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_finished_child_is_reaped_without_anyone_asking(tmp_path):
    """Nobody calls pid_alive (no page is open): the reaper thread still collects the child."""
    proc = background.spawn([sys.executable, "-c", "pass"], tmp_path / "log.txt", cwd=tmp_path,
                            env=background.child_env())
    pid = proc.pid
    end = time.time() + 30
    while proc.returncode is None and time.time() < end:
        time.sleep(0.2)  # Popen.returncode is set by the reaper's poll(), not by this loop
    assert proc.returncode == 0
    assert not _zombie(pid)
    assert pid not in background._CHILDREN


def test_reap_returns_the_finished_pids_and_keeps_the_running_ones(tmp_path):
    slow = background.spawn([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "a.log",
                            cwd=tmp_path, env=background.child_env())
    quick = background.spawn([sys.executable, "-c", "pass"], tmp_path / "b.log", cwd=tmp_path,
                             env=background.child_env())
    try:
        quick.wait(30)
        background._CHILDREN[quick.pid] = quick  # as if the reaper had not looked yet
        assert quick.pid in background.reap()
        assert slow.pid in background._CHILDREN and slow.pid not in background.reap()
    finally:
        slow.kill()
        slow.wait()
