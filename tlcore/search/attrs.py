"""The user attributes this workbench keeps on Optuna trials and studies: each key once, typed access.

Optuna stores free-form JSON "user attributes" beside every trial and study. This
module is the only place their keys are spelled. Readers call the accessors below
instead of indexing ``user_attrs`` with a string; each accessor reads a missing key,
or a value of the wrong type (a storage written by other code), as "nothing": an
empty list or dict, None, False. Writers call the setters with an ``optuna.Trial``,
or pass the key constant to a storage's ``set_trial_user_attr`` /
``set_study_user_attr`` when they hold only an id.

Trial attributes (written by ``worker`` unless noted):

- ``HISTORY`` (``tl_history``): the per-epoch records, one dict per epoch
  (``epoch``, ``phase``, train/val loss and accuracy, ``epoch_seconds``, and on a
  successive-halving rung ``rung`` and ``train_fraction``); rewritten after every epoch;
- ``METRICS`` (``tl_metrics``): the run's summary (best epoch, test accuracy, the test
  report with its confusion matrix); set when the trial completes;
- ``ARTIFACTS`` (``tl_artifacts``): {file name: artifact id} of the run folder's files
  in the artifact store; set when the trial completes;
- ``WORKER`` (``tl_worker``): the id of the worker that ran it;
- ``ERROR`` (``tl_error``): why it failed (also set by ``study.fail_trial``);
- ``INTERRUPTED`` (``tl_interrupted``): True when a stop ended it; ``study.resume_study``
  queues such trials again;
- ``RETRY_OF`` (``tl_retry_of``): on a trial queued again by a resume, the number of the
  interrupted trial it repeats (Optuna's own retries of dead workers' trials use the
  system attribute ``failed_trial``; ``retry_of`` reads both);
- ``DIVERGED`` (``tl_diverged``): why a trial that diverged was stopped (it ends PRUNED);
- ``RUNGS`` (``tl_rungs``): the successive-halving rungs it ran, one
  ``{"rung", "fraction", "epoch", "value", "promoted"}`` each (``pruners.RungPruner``);
- ``SEEDED`` (``tl_seeded``): on a trial the scout queued (``seeding``), what queued it
  ("scout"); such a trial is never pruned at a rung, and a copy queued again keeps it.
- ``DATA`` (``tl_data``): the data it trained on, ``{"digest", "images"}`` (the dataset's
  fingerprint, ``tlcore.search.fingerprint``, as the trial began): trials of one study that
  trained on different versions of its dataset (a relabel, an exclusion, a rescan between them)
  are told apart (``data_versions``).

Study attributes:

- ``SPEC`` (``tl_spec``): the ``StudySpec`` as a dict (``study.create_study``);
- ``CREATED`` (``tl_created``): when it was created, ISO 8601 in UTC;
- ``STOP`` (``tl_stop``): a stop was requested; every worker on every machine checks it;
- ``STARTED`` (``tl_started``): when its first worker started (seconds since the epoch);
  the time limit counts from it;
- ``REQUEUED`` (``tl_requeued``): numbers of the interrupted trials a resume already queued again;
- ``SCOUT`` (``tl_scout``): the scout's summary, or ``{"skipped": why}`` / ``{"error": why}``
  (``seeding``);
- ``AUGMENT`` (``tl_augment``): the study's own copy of the saved augmentation pipeline its
  spec names, ``{"name", "spec"}`` (``study.create_study``): every trial trains with it, even
  after the pipeline is changed or deleted in a workspace, or on a machine that never saved it.
- ``DATA_FINGERPRINT`` (``tl_data_fingerprint``): the fingerprint of the data its trials train on
  (``tlcore.search.fingerprint``: digest, image count, per split and class a count and a digest),
  with ``host``, ``root`` and ``workspace`` (``Workspace.identity``), the machine and workspace it was
  taken in, ``recorded`` (ISO 8601)
  and, once that workspace's data changed, ``changed`` (``{"at", "lines"}``: when, and how the
  classes differ from before). ``study.create_study`` writes it and ``study.check_dataset_here``
  compares each worker's workspace with it (and updates it when the creating workspace changed).

``duration_seconds`` (from Optuna's own timestamps) is here too: every table that
shows a trial shows its duration. Which of two values is better, and the best trial,
are in ``tlcore.search.direction``.

Example:

>>> from optuna.trial import create_trial
>>> t = create_trial(value=0.9, user_attrs={HISTORY: [{"epoch": 1, "val_accuracy": 0.9}]})
>>> epochs(t), metrics(t), error(t)
(1, {}, None)
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from optuna.trial import TrialState

__all__ = [
    # trial keys
    "HISTORY", "METRICS", "ARTIFACTS", "WORKER", "ERROR", "INTERRUPTED", "RETRY_OF", "DIVERGED", "RUNGS",
    "SEEDED", "DATA", "TRIAL_KEYS",
    # study keys
    "SPEC", "CREATED", "STOP", "STARTED", "REQUEUED", "SCOUT", "AUGMENT", "DATA_FINGERPRINT", "STUDY_KEYS",
    # trial readers
    "history", "epochs", "best_val_accuracy", "metrics", "artifacts", "worker", "error", "interrupted",
    "failure_reason", "retries", "retry_of", "diverged", "rungs", "seeded", "duration_seconds", "requeue_attrs",
    "data_digest", "data_versions",
    # trial writers
    "set_history", "set_metrics", "set_artifacts", "set_worker", "set_error", "mark_interrupted",
    "set_diverged", "set_rungs", "set_data",
    # study readers
    "stored_spec", "created_at", "stop_flag", "started_at", "requeued", "scout_record", "augment_copy",
    "data_fingerprint",
]

HISTORY = "tl_history"
METRICS = "tl_metrics"
ARTIFACTS = "tl_artifacts"
WORKER = "tl_worker"
ERROR = "tl_error"
INTERRUPTED = "tl_interrupted"
RETRY_OF = "tl_retry_of"
DIVERGED = "tl_diverged"
RUNGS = "tl_rungs"
SEEDED = "tl_seeded"
DATA = "tl_data"
TRIAL_KEYS = (HISTORY, METRICS, ARTIFACTS, WORKER, ERROR, INTERRUPTED, RETRY_OF, DIVERGED, RUNGS, SEEDED, DATA)

SPEC = "tl_spec"
CREATED = "tl_created"
STOP = "tl_stop"
STARTED = "tl_started"
REQUEUED = "tl_requeued"
SCOUT = "tl_scout"
AUGMENT = "tl_augment"
DATA_FINGERPRINT = "tl_data_fingerprint"
STUDY_KEYS = (SPEC, CREATED, STOP, STARTED, REQUEUED, SCOUT, AUGMENT, DATA_FINGERPRINT)

_OPTUNA_RETRY = "failed_trial"  # Optuna's system attribute on a retry of a dead worker's trial
INTERRUPTED_REASON = "interrupted"  # ``failure_reason`` of a trial a stop ended


class _Attributed(Protocol):
    """Anything with trial user attributes: an ``optuna.trial.FrozenTrial`` or an ``optuna.Trial``."""

    @property
    def user_attrs(self) -> Mapping[str, Any]: ...


class _Writable(Protocol):
    """A running trial's handle (``optuna.Trial``): what the setters write through."""

    def set_user_attr(self, key: str, value: Any) -> None: ...


# ------------------------------------------------------------- trial readers
def history(t: _Attributed) -> list[dict[str, Any]]:
    """The per-epoch records of trial ``t`` (``HISTORY``), oldest first; [] before its first epoch.

    Entries that are not dicts are left out.
    """
    raw = t.user_attrs.get(HISTORY)
    if not isinstance(raw, list):
        return []
    return [h for h in raw if isinstance(h, dict)]


def epochs(t: _Attributed) -> int:
    """How many epochs trial ``t`` has recorded (rung epochs included)."""
    return len(history(t))


def best_val_accuracy(t: _Attributed) -> float | None:
    """The best validation accuracy in trial ``t``'s history, or None when no epoch recorded one."""
    values = [h["val_accuracy"] for h in history(t) if h.get("val_accuracy") is not None]
    return max(values) if values else None


def metrics(t: _Attributed) -> dict[str, Any]:
    """Trial ``t``'s run summary (``METRICS``): ``best_epoch``, ``test_accuracy``, ``test`` (the
    test report), ...; {} until it completes."""
    raw = t.user_attrs.get(METRICS)
    return raw if isinstance(raw, dict) else {}


def artifacts(t: _Attributed) -> dict[str, Any]:
    """{file name: artifact id} of trial ``t``'s run files in the artifact store (``ARTIFACTS``);
    {} until it completes. The names are as stored: check them before using them as paths."""
    raw = t.user_attrs.get(ARTIFACTS)
    return dict(raw) if isinstance(raw, dict) else {}


def worker(t: _Attributed) -> str | None:
    """The id of the worker that ran trial ``t`` (``WORKER``), or None."""
    raw = t.user_attrs.get(WORKER)
    return None if raw is None else str(raw)


def error(t: _Attributed) -> str | None:
    """Why trial ``t`` failed, as recorded (``ERROR``); None when no error was recorded."""
    raw = t.user_attrs.get(ERROR)
    return str(raw) if raw else None


def interrupted(t: _Attributed) -> bool:
    """Whether a stop ended trial ``t`` (``INTERRUPTED``)."""
    return bool(t.user_attrs.get(INTERRUPTED))


def failure_reason(t: _Attributed, *, retried_as: int | None = None) -> str | None:
    """Why trial ``t`` ended without a result: its error, else "interrupted" when a stop ended it,
    else, for a trial a worker failed because its own worker had died (``retried_as``: the number
    of the retry queued for it, ``retries``), that; else None."""
    reason = error(t) or (INTERRUPTED_REASON if interrupted(t) else None)
    if reason is None and retried_as is not None:
        reason = f"its worker stopped without finishing (no heartbeat); run again as trial {retried_as}"
    return reason


def retries(trials: Iterable[Any]) -> dict[int, int]:
    """Trial number -> the number of the trial queued again for it because its worker died (Optuna's
    ``failed_trial`` system attribute on the retry); ``trials`` are ``FrozenTrial``s."""
    out: dict[int, int] = {}
    for t in trials:
        raw = t.system_attrs.get(_OPTUNA_RETRY)
        if isinstance(raw, int) and not isinstance(raw, bool):
            out.setdefault(raw, t.number)
    return out


def retry_of(t: Any) -> int | None:
    """The number of the trial that trial ``t`` repeats: Optuna's ``failed_trial`` system attribute
    (a dead worker's trial queued again), else ``RETRY_OF`` (an interrupted trial queued again by a
    resume); None for a first attempt. ``t`` is a ``FrozenTrial`` (it needs ``system_attrs``)."""
    raw = t.system_attrs.get(_OPTUNA_RETRY, t.user_attrs.get(RETRY_OF))
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def seeded(t: _Attributed) -> str | None:
    """What queued trial ``t`` as a seed ("scout", ``SEEDED``), or None for a trial the sampler chose."""
    by = t.user_attrs.get(SEEDED)
    return by if isinstance(by, str) and by else None


def data_digest(t: _Attributed) -> str | None:
    """The fingerprint digest of the data trial ``t`` trained on (``DATA``), or None (a trial from before
    it was kept, or one that never began training)."""
    raw = t.user_attrs.get(DATA)
    digest = raw.get("digest") if isinstance(raw, dict) else None
    return digest if isinstance(digest, str) and digest else None


def data_versions(trials: Iterable[Any]) -> list[dict[str, Any]]:
    """The versions of the dataset ``trials`` trained on, in the order they first appear:
    ``{"digest", "images", "trials": [numbers]}`` each; trials without a record are left out. More than
    one: the data changed between trials (a relabel, an exclusion, a rescan, another split), and their
    scores are not measured on the same validation images."""
    out: dict[str, dict[str, Any]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        digest = data_digest(t)
        if digest is None:
            continue
        images = t.user_attrs[DATA].get("images")
        entry = out.setdefault(digest, {"digest": digest, "images": images if isinstance(images, int) else None,
                                        "trials": []})
        entry["trials"].append(t.number)
    return list(out.values())


def requeue_attrs(t: _Attributed, number: int) -> dict[str, Any]:
    """The user attributes of a copy of trial ``t`` (number ``number``) queued again: ``RETRY_OF``,
    and ``SEEDED`` when ``t`` was a seed (the copy is still the configuration asked for)."""
    by = seeded(t)
    return {RETRY_OF: number, **({SEEDED: by} if by else {})}


def diverged(t: _Attributed) -> str | None:
    """Why trial ``t`` diverged (one sentence, as the worker recorded it, ``DIVERGED``), or None
    if it did not."""
    why = t.user_attrs.get(DIVERGED)
    if why is None or why is False:
        return None
    text = str(why).strip()
    return text or None


def rungs(t: _Attributed) -> list[dict[str, Any]]:
    """The successive-halving rungs trial ``t`` completed (``RUNGS``), in order; [] without any.

    Each is ``{"rung", "fraction", "epoch", "value", "promoted"}``; ``promoted`` is False on the
    rung where the trial was pruned and missing on a rung still being judged. Copies: changing
    them changes nothing stored. Entries that are not dicts are left out.
    """
    raw = t.user_attrs.get(RUNGS)
    if not isinstance(raw, list):
        return []
    return [dict(r) for r in raw if isinstance(r, dict)]


def duration_seconds(t: Any, now: _dt.datetime | None = None) -> float | None:
    """How long trial ``t`` ran, in seconds: from its start to its completion.

    A trial still running counts until ``now`` when it is given (a naive local datetime, as
    Optuna stores its timestamps); otherwise, and for a trial that never started, None.
    """
    end = t.datetime_complete
    if end is None and now is not None and t.state == TrialState.RUNNING:
        end = now
    if end is None or t.datetime_start is None:
        return None
    return (end - t.datetime_start).total_seconds()


# ------------------------------------------------------------- trial writers
def set_history(trial: _Writable, records: list[dict[str, Any]]) -> None:
    """Store the per-epoch records of a running trial (all of them, every epoch)."""
    trial.set_user_attr(HISTORY, records)


def set_metrics(trial: _Writable, summary: dict[str, Any]) -> None:
    """Store a finished run's summary (JSON-ready)."""
    trial.set_user_attr(METRICS, summary)


def set_artifacts(trial: _Writable, ids: dict[str, str]) -> None:
    """Store {file name: artifact id} of the run files uploaded to the artifact store."""
    trial.set_user_attr(ARTIFACTS, ids)


def set_worker(trial: _Writable, worker_id: str) -> None:
    """Record which worker runs the trial."""
    trial.set_user_attr(WORKER, worker_id)


def set_error(trial: _Writable, message: str) -> None:
    """Record why the trial failed."""
    trial.set_user_attr(ERROR, message)


def mark_interrupted(trial: _Writable) -> None:
    """Record that a stop ended the trial (a resume queues it again)."""
    trial.set_user_attr(INTERRUPTED, True)


def set_diverged(trial: _Writable, reason: str) -> None:
    """Record why the trial diverged (one sentence)."""
    trial.set_user_attr(DIVERGED, reason)


def set_data(trial: _Writable, fingerprint: dict[str, Any]) -> None:
    """Record the data the trial trains on: the fingerprint's digest (shortened) and image count."""
    trial.set_user_attr(DATA, {"digest": str(fingerprint["digest"])[:16], "images": int(fingerprint["images"])})


def set_rungs(trial: _Writable, records: list[dict[str, Any]]) -> None:
    """Store the successive-halving rungs the trial has run so far."""
    trial.set_user_attr(RUNGS, records)


# ------------------------------------------------------------- study readers
# They take the study's user attributes (``study.user_attrs``, ``FrozenStudy.user_attrs`` or a
# storage's ``get_study_user_attrs``), so a caller reads the storage once for several of them.
def stored_spec(study_attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored ``StudySpec`` dict (``SPEC``), or None for a study this workbench did not make."""
    raw = study_attrs.get(SPEC)
    return raw if isinstance(raw, dict) else None


def created_at(study_attrs: Mapping[str, Any]) -> str:
    """When the study was created (``CREATED``, ISO 8601), or "" when unknown."""
    return str(study_attrs.get(CREATED, ""))


def stop_flag(study_attrs: Mapping[str, Any]) -> bool:
    """Whether a stop of the study is requested (``STOP``)."""
    return bool(study_attrs.get(STOP))


def started_at(study_attrs: Mapping[str, Any]) -> float | None:
    """When the study's first worker started (``STARTED``, seconds since the epoch), or None."""
    raw = study_attrs.get(STARTED)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        return None
    return float(raw)


def requeued(study_attrs: Mapping[str, Any]) -> set[int]:
    """The numbers of the interrupted trials a resume has already queued again (``REQUEUED``)."""
    raw = study_attrs.get(REQUEUED)
    if not isinstance(raw, list):
        return set()
    return {n for n in raw if isinstance(n, int) and not isinstance(n, bool)}


def scout_record(study_attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The study's scout summary (``SCOUT``; see ``seeding``), or None when it has not scouted."""
    raw = study_attrs.get(SCOUT)
    return raw if isinstance(raw, dict) else None


def augment_copy(study_attrs: Mapping[str, Any], name: str | None) -> dict[str, Any] | None:
    """The study's copy of the saved augmentation pipeline ``name`` (``AUGMENT``), as the dict of an
    ``AugmentSpec``; None when the study keeps none under that name (a preset, none, or a study
    created before copies were kept: its trials look the name up in the workspace)."""
    raw = study_attrs.get(AUGMENT)
    if not isinstance(raw, dict) or name is None or raw.get("name") != name or not isinstance(raw.get("spec"), dict):
        return None
    return raw["spec"]


def data_fingerprint(study_attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The study's record of its dataset (``DATA_FINGERPRINT``): the fingerprint's fields plus ``host``,
    ``root``, ``recorded`` (and ``changed``); None for a study created before it was kept. Whether the
    fingerprint itself can be compared is ``tlcore.search.fingerprint.usable_fingerprint``'s to say."""
    raw = study_attrs.get(DATA_FINGERPRINT)
    return dict(raw) if isinstance(raw, dict) else None
