"""Who uses a dataset right now, and removing a dataset only when nothing does.

``remove_if_unused(ws, name)`` is how the CLI (``datasets remove``) and the Datasets page remove
a dataset: it refuses while a process of this machine uses it (``in_use_error``), since a training
job would fail at its next read of the index, or read images that ``delete_files`` deleted, and a
search study would fail every trial it has left; then it is ``tlcore.datasets.remove_dataset``.
The Datasets page names the users beside its Remove button (``dataset_users``, ``users_text``,
``how_to_stop``).

``dataset_users(ws, name)`` asks each kind's own module, and counts a process only while it really
runs (``tlcore.background.pid_alive``: the pid lives and is still a tlcore process), so what a
crashed or killed process left behind never blocks a removal:

- training jobs: ``train_jobs.running_jobs`` whose spec's dataset is ``name``;
- search studies: the live workers (``worker_state.list_workers``) whose record names ``name``
  (``WorkerRecord.dataset``, written when the worker is launched), one entry per study;
- scouts: ``scout.running_scouts(ws, name)``;
- audits: ``audit.audit_jobs(ws, name)`` neither finished nor failed.

Only this machine's processes count. A record written on another host (a workspace on a shared
drive) cannot be checked from here, and counting it would block the removal for good once that
process died. Workers that other machines run against a shared storage (a PostgreSQL study) leave no
file here and are not seen either; their trials fail on the first machine that lacks the dataset.
An audit run in a terminal without ``--status-file`` records nothing and is not seen.

``force`` removes anyway: ``pid_alive`` takes any live tlcore process for the recorded one, so a
crashed job whose process number a later tlcore process got (the dashboard's server) would block
until that process ends.

Cost: ``bench/bench_dataset_users.py``.

Example:

>>> [u.label for u in dataset_users(ws, "pets")]
['training job 20261205-101010-ab12 (running, started from the Train page, process 4242)']
>>> remove_if_unused(ws, "pets")   # DatasetError naming that job, and how to stop it
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from tlcore.errors import DatasetError
from tlcore.workspace import Workspace

__all__ = ["DatasetUser", "dataset_users", "in_use_error", "remove_if_unused", "users_text", "how_to_stop", "KINDS"]

KINDS = ("training job", "search study", "scout", "audit")


@dataclass(frozen=True)
class DatasetUser:
    """One process (or study, for its workers) using a dataset.

    ``kind`` is one of ``KINDS``; ``ident`` the job id, study name, scout run or audit job id;
    ``label`` the words naming it ("training job 20261205-101010-ab12 (running, …)"); ``pids`` its
    live processes.
    """

    kind: str
    ident: str
    label: str
    pids: tuple[int, ...] = ()


def _training_jobs(ws: Workspace, name: str) -> list[DatasetUser]:
    from tlcore.train_jobs import running_jobs

    here = socket.gethostname()
    out = []
    for js in running_jobs(ws):
        if js.spec is None or js.spec.dataset != name or js.state.get("host", here) != here:
            continue
        pid = js.state.get("pid") if isinstance(js.state.get("pid"), int) else None
        how = "from a terminal" if js.state.get("source") == "cli" else "from the Train page"
        out.append(DatasetUser("training job", js.id, f"training job {js.id} ({js.status}, started {how}"
                               + (f", process {pid})" if pid else ")"), (pid,) if pid else ()))
    return out


def _search_studies(ws: Workspace, name: str) -> list[DatasetUser]:
    from tlcore.search.storage import study_local_dir
    from tlcore.search.worker_state import list_workers

    local = study_local_dir(ws, "-").parent
    try:
        studies = sorted(p.name for p in local.iterdir() if p.is_dir()) if local.is_dir() else []
    except OSError:
        return []
    out = []
    for study in studies:
        live = [w for w in list_workers(ws, study) if w.alive and w.record.dataset == name]
        if live:
            n = len(live)
            out.append(DatasetUser("search study", study, f"search study {study!r} ({n} worker{'s' if n != 1 else ''})",
                                   tuple(w.pid for w in live)))
    return out


def _scouts(ws: Workspace, name: str) -> list[DatasetUser]:
    from tlcore.scout import running_scouts

    out = []
    for rec in running_scouts(ws, name):
        if rec.get("host") not in (None, socket.gethostname()):
            continue
        what = f" of {', '.join(rec['backbones'])} at {rec['image_size']} px"
        out.append(DatasetUser("scout", rec["record"], f"scout{what} (process {rec['pid']})", (int(rec["pid"]),)))
    return out


def _audits(ws: Workspace, name: str) -> list[DatasetUser]:
    from tlcore.audit import audit_jobs

    out = []
    for job in audit_jobs(ws, name):
        if job.get("state") in ("finished", "failed"):
            continue
        pid = job.get("pid") if isinstance(job.get("pid"), int) else None
        out.append(DatasetUser("audit", str(job["id"]), f"audit {job['id']}" + (f" (process {pid})" if pid else ""),
                               (pid,) if pid else ()))
    return out


def dataset_users(ws: Workspace, name: str) -> list[DatasetUser]:
    """The processes on this machine using dataset ``name`` now: running training jobs, live search workers
    (one entry per study), running scouts and audits, in that order (see the module docstring for what
    counts and what cannot be seen). Nothing is written; the dataset need not be registered."""
    return [*_training_jobs(ws, name), *_search_studies(ws, name), *_scouts(ws, name), *_audits(ws, name)]


def users_text(users: list[DatasetUser]) -> str:
    """The users named for people: "training job …, search study 'x' (2 workers)"."""
    return ", ".join(u.label for u in users)


def how_to_stop(users: list[DatasetUser]) -> list[str]:
    """What ends each of ``users``, one step per kind (per study for search), lowercase, without a full stop."""
    count = {k: sum(u.kind == k for u in users) for k in KINDS}
    steps = []
    if count["training job"]:
        steps.append(f"stop the training job{'s' if count['training job'] > 1 else ''} with Stop on the Train page "
                     "(or Ctrl-C in the terminal that runs 'python -m tlcore train')")
    for u in users:
        if u.kind == "search study":
            steps.append(f"stop the study with Stop on the Search page or 'python -m tlcore search stop --study "
                         f"{u.ident}' (with its --storage, when it is not in the workspace)")
    if count["scout"]:
        steps.append("let the scout finish (the Search page follows it) or end it (Ctrl-C in its terminal)"
                     if count["scout"] == 1 else
                     "let the scouts finish (the Search page follows them) or end them (Ctrl-C in their terminals)")
    if count["audit"]:
        steps.append(f"let the audit{'s' if count['audit'] > 1 else ''} finish (the Datasets page's Audit tab "
                     f"follows {'it' if count['audit'] == 1 else 'them'})")
    return steps


def in_use_error(ws: Workspace, name: str, users: list[DatasetUser] | None = None) -> DatasetError | None:
    """The error refusing to remove ``name`` while ``users`` (``dataset_users`` when not given) run: it names
    each and says how to stop it; None when nothing uses the dataset."""
    users = dataset_users(ws, name) if users is None else users
    if not users:
        return None
    pids = sorted({p for u in users for p in u.pids})
    fix = "First " + "; ".join(how_to_stop(users)) + "; then remove the dataset again."
    # A record whose pid a later tlcore process got (a reused number) would keep counting: the way out.
    which = ("" if not pids else f" (process {pids[0]} is something else now)" if len(pids) == 1 else
             f" (one of the processes {', '.join(map(str, pids))} is something else now)")
    fix += (f" If {'it is' if len(users) == 1 else 'one of them is'} not really running{which}, remove the "
            f"dataset anyway with 'python -m tlcore datasets remove {name} --force'.")
    return DatasetError(
        f"The dataset {name!r} is in use on this machine: {users_text(users)}. Removing it now would make "
        f"{'it' if len(users) == 1 else 'them'} fail. Nothing was removed or deleted.",
        received=name, fix=fix)


def remove_if_unused(ws: Workspace, name: str, *, delete_files: bool = False, force: bool = False) -> None:
    """``tlcore.datasets.remove_dataset`` (its files too when ``delete_files``), refused while something on
    this machine uses the dataset (``in_use_error``), unless ``force``.

    Raises:
        NotFoundError: ``name`` is not registered.
        DatasetError: the dataset is in use (the message names each user and how to stop it), or
            ``remove_dataset`` refused; nothing is removed then.
    """
    from tlcore.datasets import remove_dataset

    ws.get_dataset(name)
    busy = None if force else in_use_error(ws, name)
    if busy is not None:
        raise busy
    remove_dataset(ws, name, delete_files=delete_files)
