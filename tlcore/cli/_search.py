"""``python -m tlcore search ...`` and ``python -m tlcore worker``: Optuna studies from a terminal.

- ``search create --spec FILE``   store a study spec (YAML) as a new study
- ``search run --study NAME [--workers N]``   local background workers with a live display;
  Ctrl-C stops the study (resume with ``search resume`` then ``search run``)
- ``search list | status | best | export-csv | stop | resume | fail-trial | delete``; ``status`` and
  ``list`` count a trial whose worker stopped without finishing as stalled, not running;
  ``resume --trials N`` raises a finished study's budget (``run`` refuses a stopped or
  finished study, saying how to continue)
- ``worker --study NAME [--storage URL]``   one worker, for servers and clusters

Every command takes ``--storage`` (default ``$TLCORE_STORAGE``, else the workspace's
journal); ``run``, ``best``, ``delete`` and ``worker`` also take ``--artifacts``, the
artifact folder when it is not ``<workspace>/studies/artifacts``. The work is done
by ``tlcore.search``: ``study`` (create, list, stop, resume, delete, the trial
table), ``local`` (``run``'s background workers), ``worker`` (``run_worker``) and
``results`` (``best``'s run folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

from tlcore.cli._files import read_text
from tlcore.errors import ConfigError, NotFoundError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _ws(args: argparse.Namespace):
    from tlcore.cli import workspace_from

    return workspace_from(args)


def _existing_storage(args: argparse.Namespace) -> None:
    """Refuse a ``--storage`` journal path that does not exist, for the commands that read or change
    existing studies: opening it would quietly create an empty journal (a typo would show "No studies")."""
    from tlcore.search.storage import is_journal_path, journal_file

    if args.storage and is_journal_path(args.storage):
        if not journal_file(args.storage).exists():
            raise NotFoundError("There is no study journal at this path.", received=args.storage,
                                fix="Check the path (search create makes a new journal), or leave --storage out "
                                    "for the workspace's own journal.")


def _storage_args(p: argparse.ArgumentParser, *, artifacts: bool = False) -> None:
    # The default comes from $TLCORE_STORAGE, so a database password need not be on the command line
    # (which every user of the machine can read with ps); background workers get their URL that way.
    p.add_argument("--storage", metavar="URL", default=os.environ.get("TLCORE_STORAGE") or None,
                   help="postgresql://USER:PASS@HOST/DB, or a journal .log file (default: $TLCORE_STORAGE, "
                        "else the workspace's journal)")
    if artifacts:
        p.add_argument("--artifacts", metavar="DIR", default=None,
                       help="artifact folder all workers share (default: <workspace>/studies/artifacts)")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 else f"{v:.4f}"
    return str(v)


def _print_table(df, cols: list[str], out=None) -> None:
    out = out or sys.stdout  # the stdout of the call, not of the import (capture, redirection)
    cols = [c for c in cols if c in df.columns]
    rows = [[c.removeprefix("params_") for c in cols]] + [[_fmt(r[c]) for c in cols] for _, r in df.iterrows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip(), file=out)


# ------------------------------------------------------------------ commands
def _cmd_create(args: argparse.Namespace) -> int:
    from tlcore.datasets import ensure_demo
    from tlcore.search import StudySpec, create_study, describe_storage

    ws = _ws(args)
    ensure_demo(ws)
    text = read_text(args.spec, "the spec file", "Give a StudySpec as YAML (e.g. 'name: pets-search').")
    spec = StudySpec.from_yaml(text)
    if args.name:
        spec = StudySpec.from_dict({**spec.to_dict(), "name": args.name})
    create_study(ws, spec, args.storage)
    print(f"Created study {spec.name!r} in {describe_storage(ws, args.storage)}.")
    print(f"Run it: python -m tlcore search run --study {spec.name} --workers 1{_storage_arg(args.storage)}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from tlcore.search import list_studies

    studies = list_studies(_ws(args), args.storage)
    if args.json:
        print(json.dumps([s.to_dict() for s in studies], indent=2, default=str))
        return 0
    if not studies:
        print("No studies yet. Create one with: python -m tlcore search create --spec FILE")
        return 0
    for s in studies:
        print(f"{s.name}: dataset {s.dataset}, {s.finished}/{s.n_trials or '-'} finished, {_running_text(s)}, "
              f"best {s.objective} {_fmt(s.best_value)}" + ("  [stopped]" if s.stop_requested else ""))
    return 0


def _storage_arg(storage: str | None) -> str:
    """What a printed follow-up command adds to reach the same storage: nothing for the workspace journal or
    $TLCORE_STORAGE's (the command finds it again), else ``--storage`` and the URL without its password (a
    password shown is a password leaked; libpq reads it from ~/.pgpass or PGPASSWORD)."""
    if storage is None or storage == os.environ.get("TLCORE_STORAGE"):
        return ""
    from tlcore.search._urls import without_password

    return f" --storage {shlex.quote(without_password(storage))}"


def _summary(ws, name: str, storage: str | None):
    """The ``StudySummary`` of study ``name``; None when the storage has no such study."""
    from tlcore.search import list_studies

    return next((x for x in list_studies(ws, storage) if x.name == name), None)


def _running_text(s) -> str:
    """"N running", with ", M stalled" when some of the trials RUNNING in the storage have lost their worker."""
    return f"{s.live} running" + (f", {len(s.stalled)} stalled" if s.stalled else "")


def _stalled_lines(s) -> list[str]:
    """What a stalled trial is, why it is judged so, and what to do (``StudySummary.stalled``)."""
    lines = []
    for number, why in s.stalled.items():
        lines.append(f"  trial {number} stalled: {why}. It shows as running in the storage until a worker of this "
                     "study next looks for a trial: that worker marks it failed and runs it again with the same "
                     "parameters (once it has had no heartbeat for the grace period, 60 s by default). Continue: "
                     f"python -m tlcore search run --study {s.name}; or give it up: python -m tlcore search "
                     f"fail-trial --study {s.name} --trial {number}")
    return lines


def _status_lines(ws, name: str, storage: str | None, s=None) -> list[str]:
    """The study's counts, its stalled trials and this machine's workers; ``s``: its ``StudySummary``
    when already read."""
    from tlcore.search import WorkerState, list_workers

    s = s or _summary(ws, name, storage)
    if s is None:
        return [f"study {name!r}: not found"]
    lines = [f"study {name}: {s.finished}/{s.n_trials or '-'} finished ({s.counts.get('COMPLETE', 0)} complete, "
             f"{s.counts.get('PRUNED', 0)} pruned), {_running_text(s)}, {s.counts.get('FAIL', 0)} failed, "
             f"{s.counts.get('INTERRUPTED', 0)} interrupted; "
             f"best {s.objective} {_fmt(s.best_value)}" + (f" (trial {s.best_trial})" if s.best_trial is not None else "")]
    lines += _stalled_lines(s)
    if s.data_note:
        lines.append(f"  {s.data_note}")
    past = []  # workers that crashed on a trial that has ended since (failed, run again): history, in one line
    lost = []  # workers the study database's outage ended (no fault of theirs), likewise
    for w in list_workers(ws, name):
        if not w.alive and w.state == WorkerState.FINISHED:
            continue
        if not w.alive and w.state == WorkerState.CRASHED and not s.crash_pending(w.trial):
            (lost if w.lost_storage else past).append(w)
            continue
        rec = w.record
        p = w.progress
        bar = f" {int(100 * p):3d}%" if p is not None else ""
        lines.append(f"  worker {w.worker_id} [{w.state_text}] trial {_fmt(w.trial)}"
                     f" epoch {rec.epoch or '-'}/{rec.epochs or '-'}{bar} {rec.status or ''}")
    if lost:
        lines.append(f"  {len(lost)} worker(s) stopped when the study database stopped answering for longer than "
                     "their patience (--storage-patience); it answers now, so start workers again: python -m tlcore "
                     f"search run --study {name}{_storage_arg(storage)}")
    if past:
        logs = past[-1].log_path.parent
        named = ", ".join(_fmt(w.trial) for w in past if w.trial is not None)
        lines.append(f"  {len(past)} worker(s) crashed earlier, on trials that have ended since "
                     f"({named or 'none left running'}); their logs are in {logs}")
    return lines


def _cmd_status(args: argparse.Namespace) -> int:
    from tlcore.search import load_study, study_frame, with_outcomes, with_stalled

    ws = _ws(args)
    trials = load_study(ws, args.study, args.storage).get_trials(deepcopy=False)
    # how far each trial got: "11 % → 33 % → full", "(pruned)", "(diverged)", "(scout seed)"
    df = with_outcomes(study_frame(trials), trials)
    if args.json:
        print(df.to_json(orient="records", date_format="iso", indent=2))
        return 0
    s = _summary(ws, args.study, args.storage)
    for line in _status_lines(ws, args.study, args.storage, s):
        print(line)
    if len(df):
        if s is not None and s.stalled:  # the table says what the lines above say (the JSON keeps Optuna's states)
            df = with_stalled(df, s.stalled)
        print()
        # a whole-number parameter reads back as floats once a trial lacks it (a failed one): 8, not 8.0000
        import pandas as pd
        from optuna.distributions import IntDistribution

        whole = {f"params_{k}" for t in trials for k, d in t.distributions.items() if isinstance(d, IntDistribution)}
        df = df.assign(**{c: pd.Series([None if v is None or v != v else int(v) for v in df[c]], index=df.index,
                                        dtype=object) for c in whole & set(df.columns)})
        df = df.assign(rungs=df["rung_path"].where(df["rung_path"] != "", None),
                       duration_s=[None if v is None or v != v else f"{v:.1f}" for v in df["duration_s"]])
        _print_table(df, ["number", "state", "value"] + [c for c in df.columns if c.startswith("params_")]
                     + ["epochs", "duration_s", "rungs", "error"])
    return 0


def _cmd_best(args: argparse.Namespace) -> int:
    from tlcore.search import best_trial, fetch_trial_run, load_study, trial_summary

    ws = _ws(args)
    study = load_study(ws, args.study, args.storage)
    t = best_trial(study)
    info = trial_summary(t)
    run = fetch_trial_run(ws, args.study, t.number, args.storage, artifacts=args.artifacts)
    info["run_dir"] = str(run)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"Best trial: {t.number} ({study.direction.name.lower()} value {_fmt(t.value)})")
    for k, v in t.params.items():
        print(f"  {k} = {_fmt(v)}")
    print(f"Test accuracy: {_fmt(info['test_accuracy'])}   best epoch: {info['best_epoch']}")
    print(f"Run folder: {run}")
    quoted = shlex.quote(str(run))  # a workspace path may hold spaces
    print(f"Use it: python -m tlcore predict {quoted} IMAGE...")
    print(f"Export: python -m tlcore export {quoted} --format keras,tflite "
          f"--out {shlex.quote(f'{args.study}-trial{t.number}-export')}")
    return 0


def _cmd_export_csv(args: argparse.Namespace) -> int:
    from tlcore._fsutil import atomic_write_text
    from tlcore.search import load_study_frame

    df = load_study_frame(_ws(args), args.study, args.storage)
    text = df.to_csv(index=False)
    if args.out in (None, "-"):
        sys.stdout.write(text)
    else:
        out = Path(args.out).expanduser()
        if out.is_dir():  # a folder, as cp takes one: the table goes in it under the study's name
            out = out / f"{args.study}-trials.csv"
        atomic_write_text(out, text)
        print(f"Wrote {len(df)} trials to {out}", file=sys.stderr)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from tlcore.search import list_workers, stop_workers

    ws = _ws(args)
    s = _summary(ws, args.study, args.storage)
    if s is not None and s.complete and not any(w.alive for w in list_workers(ws, args.study)):
        # a stop flag here would only make the next 'search run' wait for a resume
        print(f"Study {args.study!r} has finished its {s.n_trials} trials and nothing is running: "
              "there is nothing to stop.")
        return 0
    n = stop_workers(ws, args.study, args.storage, wait=args.wait)
    print(f"Stop requested for {args.study!r}; {n} local worker(s) signalled. "
          f"Resume with: python -m tlcore search resume --study {args.study}{_storage_arg(args.storage)}")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from tlcore.search import resume_study
    from tlcore.search.study import raise_budget

    ws = _ws(args)
    if args.trials is not None or args.minutes is not None:
        spec = raise_budget(ws, args.study, args.storage, n_trials=args.trials, timeout_minutes=args.minutes)
        print(f"Study {args.study!r}: budget {spec.n_trials or 'not limited'} trials"
              + (f", time limit {spec.timeout_minutes:g} min" if spec.timeout_minutes else "") + ".")
    n = resume_study(ws, args.study, args.storage)
    s = _summary(ws, args.study, args.storage)
    if s is not None and s.complete and not n:  # nothing queued and the budget met: no worker would run
        print(f"Study {args.study!r} may run again, but it has finished its {s.n_trials} trials: to search "
              f"further, raise its budget: python -m tlcore search resume --study {args.study} --trials "
              f"{(s.n_trials or 0) + 10}{_storage_arg(args.storage)}")
        return 0
    print(f"Study {args.study!r} may run again; {n} interrupted trial(s) queued again. "
          f"Start workers: python -m tlcore search run --study {args.study}{_storage_arg(args.storage)}")
    return 0


def _cmd_fail_trial(args: argparse.Namespace) -> int:
    from tlcore.search import fail_trial

    fail_trial(_ws(args), args.study, args.trial, args.storage)
    print(f"Trial {args.trial} of {args.study!r} marked failed.")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    from tlcore.search import delete_study

    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError("Deleting a study removes its trials and saved models for good.",
                              received=args.study, fix="Add --yes to confirm.")
        answer = input(f"Delete study {args.study!r}, its trials and their saved models? Type its name to confirm: ")
        if answer.strip() != args.study:
            print("Not deleted.")
            return 1
    n = delete_study(_ws(args), args.study, args.storage, artifacts=args.artifacts)
    print(f"Deleted study {args.study!r} and {n} artifact file(s).")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from tlcore.search import launch_workers, list_workers, stop_workers
    from tlcore.search.worker_state import workers_dir

    ws = _ws(args)
    ids = launch_workers(ws, args.study, args.workers, args.storage, artifacts=args.artifacts,
                         warn=lambda s: print(f"warning: {s}", file=sys.stderr, flush=True))
    print(f"Started {len(ids)} worker(s) for {args.study!r}; logs in {workers_dir(ws, args.study)}", file=sys.stderr)
    if args.detach:
        return 0
    tty = sys.stdout.isatty()
    shown = 0
    try:
        while True:
            lines = _status_lines(ws, args.study, args.storage)
            if tty and shown:
                sys.stdout.write(f"\x1b[{shown}F\x1b[J")
            print("\n".join(lines), flush=True)
            shown = len(lines)
            mine = [w for w in list_workers(ws, args.study) if w.worker_id in ids]
            if mine and not any(w.alive for w in mine):
                break
            time.sleep(2.0 if tty else 10.0)
    except KeyboardInterrupt:
        print("\nStopping the study (the running trials end at their next batch)...", file=sys.stderr)
        stop_workers(ws, args.study, args.storage, wait=60)
        return 130
    s = _summary(ws, args.study, args.storage)
    if s is not None and s.best_trial is not None:
        print(f"Best trial {s.best_trial}: {s.objective} {_fmt(s.best_value)}. "
              f"Details: python -m tlcore search best --study {args.study}")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from tlcore.search import run_worker
    from tlcore.search.worker import check_worker_options
    from tlcore.startup import start_backend_quietly

    # run_worker checks them too; here they fail before TensorFlow starts (start_backend_quietly)
    check_worker_options(worker_index=args.worker_index, max_trials=args.max_trials,
                         heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period,
                         storage_patience=args.storage_patience)
    from tlcore.datasets import ensure_demo
    from tlcore.search.patience import DEFAULT_PATIENCE_S
    from tlcore.search.storage import is_journal_path
    from tlcore.search.study import check_dataset_here

    if args.storage_patience != DEFAULT_PATIENCE_S and (args.storage is None or is_journal_path(args.storage)):
        print("note: --storage-patience is for a database storage (postgresql://...); this study's storage is a "
              "journal file, which is not waited for.", file=sys.stderr, flush=True)
    ws = _ws(args)
    ensure_demo(ws)  # a study of the demo on a fresh workspace: registered here, as search create does
    # else each trial it took would fail (and count), or train on other data than the study's other trials;
    # the dataset changed in the workspace that created the study: it goes on, and says so
    check_dataset_here(ws, args.study, args.storage,
                       warn=lambda s: print(f"warning: {s}", file=sys.stderr, flush=True))

    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        print(f"{signal.Signals(signum).name}: stopping; a running trial is handed back to the queue "
              "(or, when the study was stopped, waits for a resume)", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    start_backend_quietly()
    result = run_worker(ws, args.study, args.storage, artifacts=args.artifacts, worker_id=args.worker_id,
                        worker_index=args.worker_index, heartbeat_interval=args.heartbeat_interval,
                        grace_period=args.grace_period, max_trials=args.max_trials, stop_event=stop,
                        storage_patience=args.storage_patience,
                        log=lambda s: print(f"[{time.strftime('%H:%M:%S')}] {s}", flush=True))
    return 0 if "error" not in result.reason else 1


# ------------------------------------------------------------------ parser
def _needs_existing_storage(handler):
    def run(args: argparse.Namespace) -> int:
        _existing_storage(args)
        return handler(args)

    return run


def register(sub: argparse._SubParsersAction) -> None:
    from tlcore.search.heartbeat import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL
    from tlcore.search.patience import DEFAULT_PATIENCE_S

    p = sub.add_parser("search", help="Optuna studies: create, run, status, best, export")
    ss = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, handler, help: str, *, study: bool = True, artifacts: bool = False) -> argparse.ArgumentParser:
        q = ss.add_parser(name, help=help, description=help)
        if study:
            q.add_argument("--study", required=True, metavar="NAME", help="the study's name")
        _storage_args(q, artifacts=artifacts)
        q.set_defaults(handler=handler if name == "create" else _needs_existing_storage(handler))
        return q

    q = cmd("create", _cmd_create, "create a study from a YAML spec file", study=False)
    q.add_argument("--spec", required=True, metavar="FILE", help="StudySpec YAML (see README)")
    q.add_argument("--name", default=None, help="override the spec's name")
    q = cmd("list", _cmd_list, "list the studies", study=False)
    q.add_argument("--json", action="store_true")
    q = cmd("run", _cmd_run, "start local workers and show progress until they finish", artifacts=True)
    q.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default 1)")
    q.add_argument("--detach", action="store_true", help="start the workers and return at once")
    q = cmd("status", _cmd_status, "trials, their states and values; local workers")
    q.add_argument("--json", action="store_true")
    q = cmd("best", _cmd_best, "the best trial: parameters, metrics, its run folder", artifacts=True)
    q.add_argument("--json", action="store_true")
    q = cmd("export-csv", _cmd_export_csv, "the trial table as CSV")
    q.add_argument("--out", default=None, metavar="FILE", help="file to write, or a folder to write STUDY-trials.csv "
                   "in (default: standard output)")
    q = cmd("stop", _cmd_stop, "stop the study's workers (running trials are queued again on resume)")
    q.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="seconds to wait for local workers to exit (default 0)")
    q = cmd("resume", _cmd_resume, "allow a stopped (or finished) study to run again")
    q.add_argument("--trials", type=int, default=None, metavar="N",
                   help="raise the study's trial budget to N (a finished study runs further)")
    q.add_argument("--minutes", type=float, default=None, metavar="M",
                   help="raise its time limit to M minutes since its first worker started")
    q = cmd("fail-trial", _cmd_fail_trial, "mark a running trial failed")
    q.add_argument("--trial", type=int, required=True, metavar="N")
    q = cmd("delete", _cmd_delete, "delete a study with its trials and saved models", artifacts=True)
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    w = sub.add_parser("worker", help="run trials of a study until its budget is met (for servers and clusters)")
    w.add_argument("--study", required=True, metavar="NAME")
    _storage_args(w, artifacts=True)
    w.add_argument("--worker-id", default=None, help=argparse.SUPPRESS)
    w.add_argument("--worker-index", type=int, default=0, metavar="I",
                   help="give each worker of a study a different index (offsets the sampler seed)")
    w.add_argument("--heartbeat-interval", type=int, default=DEFAULT_HEARTBEAT_INTERVAL, metavar="S")
    w.add_argument("--grace-period", type=int, default=DEFAULT_GRACE_PERIOD, metavar="S",
                   help="a running trial without a heartbeat this long is failed and retried")
    w.add_argument("--max-trials", type=int, default=None, metavar="N", help="stop after N trials in this worker")
    w.add_argument("--storage-patience", type=float, default=DEFAULT_PATIENCE_S, metavar="S",
                   help="seconds to wait for a study database that stops answering (a restart) before the worker "
                        f"ends; 0: end at once (default {DEFAULT_PATIENCE_S:.0f})")
    w.set_defaults(handler=_needs_existing_storage(_cmd_worker))
