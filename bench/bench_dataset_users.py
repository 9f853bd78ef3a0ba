"""Benchmark ``tlcore.dataset_users.dataset_users``: what the Datasets page asks on every rerun
(beside its Remove button) and ``datasets remove`` before it removes.

Builds a scratch workspace that has run for a while: the demo dataset, N finished training jobs,
S search studies of W finished workers each, plus one live worker (a sleeping stand-in process
whose command line names tlcore, as ``background.pid_alive`` wants) of a study on another
dataset. Then times ``dataset_users(ws, "demo")``: the first call (it imports the search
package) and the median of R calls after it.

Usage::

    python bench/bench_dataset_users.py                    # 50 jobs, 3 studies of 4 workers, 15 calls
    python bench/bench_dataset_users.py --jobs 500 --studies 10
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--studies", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    from tlcore import train_jobs as tj
    from tlcore.config import TrainSpec
    from tlcore.datasets import ensure_demo
    from tlcore.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws")
        ensure_demo(ws)
        for i in range(args.jobs):
            job = tj.register_job(ws, TrainSpec(dataset="demo", weights=None, image_size=32), source="cli")
            state = json.loads(job.state_file.read_text())
            job.state_file.write_text(json.dumps({**state, "status": "finished", "pid": 4_000_000 + i,
                                                  "host": socket.gethostname(), "ended": time.time()}))
        stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "tlcore-stand-in"])
        try:
            for s in range(args.studies):
                wdir = ws.root / "studies" / "local" / f"study{s}" / "workers"
                wdir.mkdir(parents=True)
                for w in range(args.workers):
                    live = s == 0 and w == 0
                    (wdir / f"w{w}.json").write_text(json.dumps({
                        "worker_id": f"w{w}", "pid": stand_in.pid if live else 4_100_000 + 10 * s + w,
                        "host": socket.gethostname(), "dataset": "other", "started": time.time(),
                        "state": "training" if live else "finished"}))
            from tlcore.dataset_users import dataset_users

            t0 = time.perf_counter()
            assert dataset_users(ws, "demo") == []
            first = time.perf_counter() - t0
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                assert dataset_users(ws, "demo") == []
                times.append(time.perf_counter() - t0)
        finally:
            stand_in.kill()
            stand_in.wait()
    times.sort()
    print(f"dataset_users: {args.jobs} finished jobs, {args.studies} studies x {args.workers} worker files "
          f"(1 live): first call {first * 1000:.1f} ms, then median {times[len(times) // 2] * 1000:.2f} ms "
          f"(min {times[0] * 1000:.2f}, max {times[-1] * 1000:.2f}) over {args.repeats} calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
