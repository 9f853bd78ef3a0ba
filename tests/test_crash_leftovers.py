"""What a process killed while building a folder leaves: ``atomic_directory``'s hidden temporary folders
(``.NAME.*.partial``, ``.NAME.old-PID``) in the models, exports, data or audits folder, never used and
never listed, 13 MB each for a demo run. A later ``atomic_directory`` in the same folder deletes those
untouched for ``STALE_AFTER_S``; fresh ones (another process's build in progress) and everything else stay.
The leftovers are made directly, their age set with ``os.utime``.
"""

from __future__ import annotations

import os
import time

from tlcore._fsutil import STALE_AFTER_S, atomic_directory


def _aged(path, seconds):
    path.mkdir()
    (path / "model.keras").write_bytes(b"x" * 100)
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_a_killed_build_s_leftovers_are_swept_by_the_next_build(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    stale = _aged(models / ".run-20261201-120000.k2j4.partial", STALE_AFTER_S + 60)
    stale_old = _aged(models / ".run-a.old-4242", STALE_AFTER_S + 60)
    fresh = _aged(models / ".run-b.x9.partial", 60)  # another process building now
    users = [_aged(models / "run-c", STALE_AFTER_S * 3), _aged(models / "photos.partial", STALE_AFTER_S * 3),
             _aged(models / ".hidden", STALE_AFTER_S * 3)]  # not a temporary folder of atomic_directory
    stale_file = models / ".notes.partial"
    stale_file.write_text("a file, not a folder")
    os.utime(stale_file, (0, 0))
    with atomic_directory(models / "run-d") as tmp:
        (tmp / "model.keras").write_bytes(b"y")
    assert not stale.exists() and not stale_old.exists()
    assert fresh.is_dir() and all(p.is_dir() for p in users) and stale_file.is_file()
    assert (models / "run-d" / "model.keras").read_bytes() == b"y"


def test_the_sweep_reaches_only_the_parent_of_the_folder_being_built(tmp_path):
    elsewhere = tmp_path / "exports"
    elsewhere.mkdir()
    kept = _aged(elsewhere / ".e1.ab.partial", STALE_AFTER_S + 60)
    with atomic_directory(tmp_path / "models" / "run") as tmp:
        (tmp / "f").write_text("1")
    assert kept.is_dir()


def test_a_worker_deletes_the_trial_folders_of_killed_workers_of_its_host(workspace):
    """A worker killed mid-trial left its ``cache/trial-N-…`` folder (the trial's run, 13 MB for the demo)
    for good. A starting worker deletes those whose process, on this host, is gone."""
    import socket
    import subprocess
    import sys

    from tlcore import background
    from tlcore.search.worker import _sweep_dead_trial_folders

    host = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now belongs to no process
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "tlcore-stand-in"])
    background.track_child(live)
    try:
        cache = workspace.cache_dir
        cache.mkdir(parents=True, exist_ok=True)
        dead = [cache / f"trial-3-{host}-{gone.pid}-k2_x9", cache / f"trial-12-{host}-{gone.pid}-a1b2"]
        kept = [cache / f"trial-4-{host}-{live.pid}-q7w8",  # a live worker trains in it
                cache / f"trial-5-some-other-host-{gone.pid}-z0z0",  # another machine's: cannot be checked here
                cache / "trial-6-old_name", cache / "features"]
        for folder in dead + kept:
            (folder / "run").mkdir(parents=True)
        assert _sweep_dead_trial_folders(workspace) == 2
        assert not any(p.exists() for p in dead) and all(p.is_dir() for p in kept)
    finally:
        live.kill()
        live.wait()
