"""A study database that a search worker waits for when it stops answering for a while.

A worker on PostgreSQL ended at the first call its database did not answer (a server restart,
a failover, a network blip): the study lost the worker, and its running trial waited for a missed
heartbeat before another worker retried it. ``PatientRDBStorage`` is Optuna's ``RDBStorage``
whose calls, inside ``patient(seconds, log)``, are tried again while the error is a lost or
refused connection, with growing pauses (1, 2, 4, 8, then 15 s), until ``seconds`` have passed;
then the error goes on as before (``tlcore.search.worker`` ends the worker with one line saying
so). The engine already pings a pooled connection before using it (``pool_pre_ping``), so once
the server answers again the next try gets a fresh connection.

Only a worker waits (``run_worker``): outside ``patient`` a call fails at once, so the pages and
the CLI's one-shot commands say "cannot reach the database" instead of hanging. The heartbeat
thread does not wait either: a missed beat is retried at the next one.

What is tried again is the whole call, which runs in one transaction that the failure rolled back.
The one case a retry repeats work is a commit that reached the server but whose answer was lost
with the connection: a trial created twice, or a queued trial taken twice (the first of each then
shows as RUNNING with no worker, and no heartbeat ever), or a trial's end told twice (the second is
refused as "already finished" and the worker moves on).

Such a trial, and the trial of a worker killed between taking it and its first heartbeat, would
stay RUNNING for good: Optuna's RDB storage judges only trials that have a heartbeat (the journal
storage here counts from the trial's start, ``heartbeat.HeartbeatJournalStorage``), and a study
whose budget counts it waited on it forever. ``PatientRDBStorage`` also judges a RUNNING trial that
has had no heartbeat for the grace period since this storage first saw it so (its own clock: a
trial's start time is another machine's local time), so a worker fails it and queues it again as
it does a dead worker's. A worker's beat thread starts as soon as it takes a trial
(``worker.run_worker``), so a live trial is silent only for that moment; and a storage that lost
its connection starts those clocks again, since it did not watch while the database was away.

For the same reason a storage that lost its connection (in any call, its heartbeats included) judges
no trial by its heartbeat until the grace period has passed since the database answered it again
(counted from its first look at the study's trials after that).
After an outage longer than the grace period every live trial's last beat is old, and Optuna's rule
(a beat older than the grace period, by the database's clock) failed the trial of a worker still
training the moment another worker asked, before its beat thread had reached the database again;
its worker then stopped it and the trial started over. A worker that is dead is still judged, one
grace period later.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from optuna.exceptions import StorageInternalError
from optuna.storages import RDBStorage

from tlcore.search.heartbeat import grace_period

__all__ = ["DEFAULT_PATIENCE_S", "PatientRDBStorage", "connection_lost", "driver_error", "patient", "WAITED_METHODS"]

DEFAULT_PATIENCE_S = 300.0
PAUSES_S = (1.0, 2.0, 4.0, 8.0, 15.0)  # then 15 s each

# RDBStorage's methods that reach the database: its public ones and the private ones Optuna's
# _CachedStorage calls directly (a test checks that each still exists).
WAITED_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
    "get_study_system_attrs", "get_all_studies", "create_new_trial", "_create_new_trial", "set_trial_param",
    "_set_trial_param", "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial",
    "get_all_trials", "_get_trials", "get_best_trial", "_get_best_trial_id", "_get_stale_trial_ids",
)


@dataclass(frozen=True)
class _Patience:
    seconds: float
    log: Callable[[str], None]
    stop: threading.Event | None


_PATIENCE: contextvars.ContextVar[_Patience | None] = contextvars.ContextVar("tlcore_storage_patience", default=None)
_INSIDE = threading.local()  # a waited call made by another one (create_new_trial -> _create_new_trial) waits once


@contextlib.contextmanager
def patient(seconds: float, log: Callable[[str], None], stop: threading.Event | None = None) -> Iterator[None]:
    """Within this block, this thread's calls to a ``PatientRDBStorage`` wait up to ``seconds`` for the
    database to answer again (0: not at all), saying so through ``log``; setting ``stop`` ends the wait."""
    token = _PATIENCE.set(_Patience(float(seconds), log, stop) if seconds > 0 else None)
    try:
        yield
    finally:
        _PATIENCE.reset(token)


def connection_lost(exc: BaseException | None) -> bool:
    """Whether ``exc`` or what caused it is the database connection failing (SQLAlchemy's
    ``OperationalError``/``InterfaceError``, or a DBAPI error that invalidated its connection):
    errors worth waiting out. Bad data, a missing table or a broken constraint are not."""
    seen = 0
    while exc is not None and seen < 8:
        kind = type(exc)
        if kind.__module__.startswith("sqlalchemy"):
            if kind.__name__ in ("OperationalError", "InterfaceError") or getattr(exc, "connection_invalidated", False):
                return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def driver_error(exc: BaseException) -> str:
    """``TYPE: first line`` of the error at the root of ``exc``'s causes: the driver's own words ("server
    closed the connection unexpectedly"), not Optuna's "invalid data in the commit" that wraps every
    database error (raised from it, or, on some paths, while handling it). Not scrubbed of passwords."""
    cause, seen = exc, 0
    while seen < 8:
        below = cause.__cause__ or (cause.__context__ if isinstance(cause, StorageInternalError) else None)
        if below is None:
            break
        cause, seen = below, seen + 1
    return f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [type(cause).__name__])[0]}"


def _noting_loss(storage: PatientRDBStorage, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``method(storage, ...)`` without waiting; a lost connection is noted (``lost_sight``) before it goes on."""
    try:
        return method(storage, *args, **kwargs)
    except Exception as exc:
        if connection_lost(exc):
            storage.lost_sight()
        raise


def _waited(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: PatientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        wait = _PATIENCE.get()
        if wait is None or getattr(_INSIDE, "depth", 0):
            return _noting_loss(self, method, *args, **kwargs)
        began, tries = time.monotonic(), 0
        while True:
            _INSIDE.depth = 1
            try:
                result = method(self, *args, **kwargs)
            except Exception as exc:
                lost = connection_lost(exc)
                if lost:
                    self.lost_sight()
                waited = time.monotonic() - began
                left = wait.seconds - waited
                if not lost or left <= 0 or (wait.stop is not None and wait.stop.is_set()):
                    if tries and lost:
                        wait.log(f"study storage: still not answering after {waited:.0f} s; giving up")
                    raise
                if not tries:
                    wait.log(f"study storage: not answering ({self.scrub(driver_error(exc))}); trying again for up "
                             f"to {wait.seconds:.0f} s")
                pause = min(PAUSES_S[min(tries, len(PAUSES_S) - 1)], left)
                tries += 1
                if wait.stop is not None:
                    wait.stop.wait(pause)
                else:
                    time.sleep(pause)
                continue
            finally:
                _INSIDE.depth = 0
            if tries:
                wait.log(f"study storage: answering again after {time.monotonic() - began:.0f} s ({name})")
            return result

    return call


class PatientRDBStorage(RDBStorage):
    """``RDBStorage`` whose calls wait out a lost connection inside ``patient``, and that judges a running
    trial that never had a heartbeat as it does one whose heartbeat stopped (module docstring)."""

    def _silent_running(self, study_id: int) -> set[int]:
        """The ids of study ``study_id``'s RUNNING trials that have no heartbeat at all."""
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
        from optuna.trial import TrialState

        with _create_scoped_session(self.scoped_session) as session:
            rows = (session.query(models.TrialModel.trial_id)
                    .filter(models.TrialModel.study_id == study_id, models.TrialModel.state == TrialState.RUNNING,
                            ~models.TrialModel.heartbeats.any())
                    .all())
        return {int(r[0]) for r in rows}

    def lost_sight(self) -> None:
        """Its connection was cut: what it saw before is no watch. The clocks of heartbeat-less trials start
        again, and no trial is judged by its heartbeat until a grace period after the database answers again
        (``_stale_or_silent``)."""
        self.__dict__.pop("_silent_since", None)
        self.__dict__["_lost"] = True

    def record_heartbeat(self, trial_id: int) -> None:
        """Optuna's, noting a lost connection (the beat thread does not wait: its next beat tries again)."""
        _noting_loss(self, RDBStorage.record_heartbeat, trial_id)

    def scrub(self, text: str) -> str:
        """``text`` (a driver's error) without the URL's password, for the log."""
        from tlcore.search._urls import scrub_secrets

        return scrub_secrets(text, self.url)


def _stale_or_silent(self: PatientRDBStorage, study_id: int) -> list[int]:
    """Optuna's stale trials (a heartbeat older than the grace period), none of them while less than a grace
    period has passed since the first of these calls the database answered after this storage lost its
    connection, and the RUNNING trials that have had no heartbeat for the grace period since this storage
    first saw them without one."""
    stale = RDBStorage._get_stale_trial_ids(self, study_id)
    grace = grace_period(self) or 0
    silent = self._silent_running(study_id)
    now = time.monotonic()
    if self.__dict__.pop("_lost", False):
        self.__dict__["_back_since"] = now
    if now - self.__dict__.get("_back_since", -float("inf")) <= grace:
        stale = []  # its workers' beats may not have reached the database again yet
    seen: dict[int, float] = self.__dict__.setdefault("_silent_since", {}).setdefault(study_id, {})
    for tid in [t for t in seen if t not in silent]:
        del seen[tid]
    stale += sorted(tid for tid in silent if now - seen.setdefault(tid, now) > grace and tid not in stale)
    return stale


for _name in WAITED_METHODS:
    setattr(PatientRDBStorage, _name, _waited(_stale_or_silent if _name == "_get_stale_trial_ids"
                                              else getattr(RDBStorage, _name), _name))
del _name
