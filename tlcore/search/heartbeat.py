"""Heartbeats: how a dead worker's trial is noticed, failed and queued again.

A worker records a heartbeat every ``heartbeat_interval`` seconds while it runs a
trial (``HeartbeatThread``, around the training). A running trial without one for
``grace_period`` seconds belongs to a dead worker: whichever worker looks next
(``optuna.storages.fail_stale_trials``, before each trial) marks it failed, and
Optuna's ``RetryHeartbeatStaleTrialCallback`` queues it again with the same
parameters, at most ``max_retry`` times.

Optuna's RDB storage keeps heartbeats natively. Its journal storage does not, so
``HeartbeatJournalStorage`` adds them, stored as a trial system attribute
(``HEARTBEAT_ATTR``). Optuna decides whether a storage has heartbeats by
``isinstance(storage, optuna.storages._heartbeat.BaseHeartbeat)`` (``fail_stale_trials``,
``is_heartbeat_enabled``), a private class, so ``HeartbeatJournalStorage`` subclasses
it; ``tests/test_heartbeat.py`` pins the part of its interface used here (its
abstract methods and their signatures) against the installed Optuna, so an upgrade
that changes it fails there with a clear message.

Until a worker looks, the dead worker's trial stays RUNNING in the storage. Readers
(``study.list_studies``, the CLI's ``search status``, the Search page) ask
``stale_trial_ids`` which running trials a worker would fail now, and say so; they
never fail them themselves (that, and the retry, are the workers').

Entry points: ``HeartbeatJournalStorage`` (built by ``storage.open_storage``),
``HeartbeatThread`` (``worker``), ``stale_trial_ids`` and ``grace_period`` (readers),
the defaults ``DEFAULT_HEARTBEAT_INTERVAL``,
``DEFAULT_GRACE_PERIOD`` and ``MAX_RETRY`` (``storage``, ``worker``, ``local``, the
CLI's ``worker`` options).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "HeartbeatJournalStorage", "HeartbeatThread", "DEFAULT_HEARTBEAT_INTERVAL", "DEFAULT_GRACE_PERIOD",
    "MAX_RETRY", "HEARTBEAT_ATTR", "stale_trial_ids", "grace_period", "heartbeat_enabled",
]

DEFAULT_HEARTBEAT_INTERVAL = 10
DEFAULT_GRACE_PERIOD = 60
MAX_RETRY = 2
HEARTBEAT_ATTR = "tl:heartbeat"  # the trial system attribute holding a journal trial's last heartbeat


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage plus heartbeats kept as trial system attributes.

    Implements ``BaseHeartbeat``'s abstract methods (``record_heartbeat``,
    ``_get_stale_trial_ids``, ``get_heartbeat_interval``,
    ``get_heartbeat_stale_trial_callback``), which ``fail_stale_trials`` calls.
    """

    def __init__(self, backend: JournalFileBackend, *, heartbeat_interval: int, grace_period: int,
                 callback: Callable[[optuna.Study, FrozenTrial], None] | None):
        super().__init__(backend)
        self._hb_interval = heartbeat_interval
        self._grace = grace_period
        self._stale_callback = callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.system_attrs.get(HEARTBEAT_ATTR)
            if isinstance(beat, (int, float)):
                last = float(beat)  # seconds since the epoch: the same on every machine
            else:  # never beat (a worker beats as it takes a trial): from its start, in this machine's local time
                last = t.datetime_start.timestamp() if t.datetime_start else now
            if now - last > self._grace:
                stale.append(t._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._hb_interval

    @property
    def grace_period(self) -> int:
        """Seconds without a heartbeat after which a running trial is judged dead."""
        return self._grace

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._stale_callback


def grace_period(storage: BaseStorage) -> int | None:
    """The seconds without a heartbeat after which ``storage`` judges a running trial dead; None
    without heartbeats. (Optuna's RDB storage defaults to twice the interval.)"""
    if not heartbeat_enabled(storage):
        return None
    grace = getattr(storage, "grace_period", None)
    return int(grace) if grace else 2 * int(storage.get_heartbeat_interval() or 0)


def heartbeat_enabled(storage: BaseStorage) -> bool:
    """Whether ``storage`` keeps heartbeats (a ``BaseHeartbeat`` with an interval)."""
    return isinstance(storage, BaseHeartbeat) and bool(storage.get_heartbeat_interval())


def stale_trial_ids(storage: BaseStorage, study_id: int) -> list[int]:
    """The running trials of study ``study_id`` whose worker has sent no heartbeat for the grace
    period: those the next worker fails and queues again (``optuna.storages.fail_stale_trials``).
    Reads only; empty for a storage without heartbeats."""
    if grace_period(storage) is None:
        return []
    return list(storage._get_stale_trial_ids(study_id))  # type: ignore[attr-defined]


class HeartbeatThread:
    """Records a trial's heartbeat every interval until stopped (a context manager): the first on entering,
    before it returns (so the trial has one from then on), the next ones from a thread.

    Does nothing for a storage without heartbeats (not a ``BaseHeartbeat``, or no interval).
    """

    def __init__(self, storage: BaseStorage, trial_id: int):
        self._storage, self._trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        try:
            self._storage.record_heartbeat(self._trial_id)  # type: ignore[attr-defined]
        except Exception:  # a transient storage error must not kill training; the next beat retries
            pass

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._beat()

    def __enter__(self) -> HeartbeatThread:
        if heartbeat_enabled(self._storage):
            self._beat()
            interval = float(self._storage.get_heartbeat_interval() or DEFAULT_HEARTBEAT_INTERVAL)
            self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True,
                                            name=f"heartbeat-{self._trial_id}")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
