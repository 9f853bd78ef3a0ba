"""A search worker through a real PostgreSQL restart: what a server's maintenance does to a study.

Starts a private PostgreSQL cluster (``tests/helpers/pgserver.py``: Debian's postgresql binaries), a
scratch workspace with the demo data and a 3-trial study at 96 px, and one ``python -m tlcore worker``.
When the worker logs trial 1's first epoch, the server is stopped (``pg_ctl stop -m fast``), left down
``--down`` seconds and started again. Prints the worker's log, its exit code and the study's status:
every trial should complete, the log saying when the worker started waiting and when the database
answered again (``tlcore.search.patience``).

Usage::

    python bench/bench_pg_restart.py              # down 20 s
    python bench/bench_pg_restart.py --down 400   # longer than the worker's patience: it ends, saying so
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SPEC = ("name: walk\ndataset: demo\nimage_size: 96\nmethods: [fine_tune]\nfreeze_depth: [8, 18]\n"
        "learning_rate: [1.0e-4, 1.0e-2]\nepochs: 3\nn_trials: 3\npruner: none\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--down", type=float, default=20.0, help="seconds the server stays stopped")
    args = ap.parse_args()
    from tests.helpers.pgserver import PrivateCluster

    cluster = PrivateCluster.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "TLCORE_HOME": f"{tmp}/ws", "TLCORE_STORAGE": cluster.url, "TF_CPP_MIN_LOG_LEVEL": "3"}
            Path(f"{tmp}/spec.yaml").write_text(SPEC)
            tl = [sys.executable, "-m", "tlcore"]
            subprocess.run([*tl, "search", "create", "--spec", f"{tmp}/spec.yaml"], env=env, cwd=REPO, check=True)
            log_path = Path(f"{tmp}/worker.log")
            t0 = time.time()
            with open(log_path, "w") as log:
                worker = subprocess.Popen([*tl, "worker", "--study", "walk"], env=env, cwd=REPO, stdout=log,
                                          stderr=subprocess.STDOUT)
                restarted = False
                while worker.poll() is None:
                    if not restarted and "trial 1: epoch 1" in log_path.read_text():
                        stopped = time.time()
                        cluster._run("pg_ctl", "-D", str(cluster.data_dir), "-m", "fast", "-w", "-t", "60", "stop")
                        print(f"server stopped at {stopped - t0:.1f} s", flush=True)
                        time.sleep(args.down)
                        cluster._pg_ctl_start()
                        print(f"server started again at {time.time() - t0:.1f} s (down {time.time() - stopped:.1f} s)")
                        restarted = True
                    time.sleep(0.5)
            print(f"worker exit {worker.returncode} after {time.time() - t0:.1f} s\n")
            print(log_path.read_text())
            status = subprocess.run([*tl, "search", "status", "--study", "walk"], env=env, cwd=REPO,
                                    capture_output=True, text=True)
            print(status.stdout, status.stderr)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
