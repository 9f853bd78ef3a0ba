"""A search worker waits out a study database that stops answering for a while (a restart, a network
cut) instead of ending: ``tlcore.search.patience``. The outage is a ``FlakyLink`` between the client
and the test server, cut and restored, so CI's shared server is never restarted.

Before: the first call the database did not answer ended the worker ("The study storage stopped
answering ...; this worker stops."), and its trial waited for a missed heartbeat to be retried."""

from __future__ import annotations

import threading
import time

import optuna
import pytest
import sqlalchemy.exc
from optuna.storages import RDBStorage
from optuna.trial import TrialState

import tlcore.trainer
from tests.helpers.flakylink import FlakyLink
from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.search import create_study, open_storage, run_worker
from tlcore.search.patience import WAITED_METHODS, PatientRDBStorage, connection_lost, patient
from tlcore.workspace import Workspace


@pytest.fixture
def link(fresh_postgres_url):
    flaky = FlakyLink(fresh_postgres_url)
    yield flaky
    flaky.close()


def _storage(url: str) -> PatientRDBStorage:
    return PatientRDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def test_every_waited_method_is_one_optuna_s_storage_has():
    """The private ones are what Optuna's cache layer calls: a rename in a new Optuna must show here."""
    missing = [m for m in WAITED_METHODS if not callable(getattr(RDBStorage, m, None))]
    assert missing == []
    assert all(getattr(PatientRDBStorage, m) is not getattr(RDBStorage, m) for m in WAITED_METHODS)


def test_a_lost_connection_is_told_from_bad_data():
    def wrapped(cause: BaseException) -> optuna.exceptions.StorageInternalError:
        try:
            try:
                raise cause
            except Exception as exc:
                raise optuna.exceptions.StorageInternalError("invalid data in the commit") from exc
        except optuna.exceptions.StorageInternalError as outer:
            return outer

    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    assert connection_lost(wrapped(lost)) and connection_lost(lost)
    assert connection_lost(sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")))
    assert not connection_lost(wrapped(sqlalchemy.exc.DataError("INSERT", {}, Exception("value too long"))))
    assert not connection_lost(sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not connection_lost(ValueError("no")) and not connection_lost(None)


def test_a_call_waits_until_the_database_answers_again(link):
    st = _storage(link.url)
    sid = st.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    lines: list[str] = []
    link.cut()
    link.restore_after(3.0)
    began = time.monotonic()
    with patient(60, lines.append):
        st.set_study_user_attr(sid, "k", 1)
        assert st.get_study_user_attrs(sid) == {"k": 1}
    assert time.monotonic() - began >= 2.5 and link.refused >= 1
    assert lines[0].startswith("study storage: not answering (OperationalError: ")
    assert lines[0].endswith("trying again for up to 60 s")
    assert lines[-1].startswith("study storage: answering again after ") and len(lines) == 2, lines


def test_outside_a_worker_a_call_fails_at_once(link):
    """The pages and the one-shot commands say the database is unreachable rather than hang."""
    st = _storage(link.url)
    sid = st.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    link.cut()
    with pytest.raises(optuna.exceptions.StorageInternalError) as err:
        st.get_study_user_attrs(sid)
    assert connection_lost(err.value)
    with patient(0, print), pytest.raises(optuna.exceptions.StorageInternalError):
        st.get_study_user_attrs(sid)


def test_a_worker_gives_up_when_its_patience_is_spent(link):
    st = _storage(link.url)
    sid = st.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    lines: list[str] = []
    link.cut()
    with patient(2, lines.append), pytest.raises(optuna.exceptions.StorageInternalError):
        st.get_study_user_attrs(sid)
    assert lines[-1].startswith("study storage: still not answering after ") and lines[-1].endswith("; giving up")


def test_a_stop_ends_the_wait(link):
    """SIGTERM to a worker waiting for its database (a cluster evicting it) must not wait minutes."""
    st = _storage(link.url)
    sid = st.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    stop = threading.Event()
    link.cut()
    threading.Timer(1.0, stop.set).start()
    began = time.monotonic()
    with patient(120, lambda s: None, stop), pytest.raises(optuna.exceptions.StorageInternalError):
        st.get_study_user_attrs(sid)
    assert time.monotonic() - began < 60  # the wait ended with the stop, long before its 120 s


def test_a_database_url_opens_a_patient_storage(tmp_path, link):
    assert isinstance(open_storage(Workspace(tmp_path / "ws"), link.url, create=True), PatientRDBStorage)


def _study_losing_its_database(tmp_path, link: FlakyLink, monkeypatch, *, n_trials: int) -> Workspace:
    """A workspace with the tiny study "far" in the database behind ``link``, whose trials cut the link as
    they start training (the test restores it, or not)."""
    ws = Workspace(tmp_path / "ws")
    add_tiny_dataset(ws)
    create_study(ws, tiny_spec("far", n_trials=n_trials), link.url)
    real_train = tlcore.trainer.train

    def train_then_lose_the_database(*args, **kwargs):
        link.cut()
        return real_train(*args, **kwargs)

    monkeypatch.setattr(tlcore.trainer, "train", train_then_lose_the_database)
    return ws


@pytest.mark.slow
def test_a_worker_trains_through_a_database_restart(tmp_path, link, monkeypatch):
    """The link is cut as each trial starts training and comes back 2 s after the worker first finds it
    gone: every trial completes, with its epochs reported while the database was away, and the worker says
    it waited."""
    ws = _study_losing_its_database(tmp_path, link, monkeypatch, n_trials=2)

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("study storage: not answering"):
            link.restore_after(2.0)

    lines: list[str] = []
    result = run_worker(ws, "far", link.url, log=log)
    trials = optuna.load_study(study_name="far", storage=link.url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, lines
    assert result.trials == [0, 1] and result.reason.startswith("budget met"), result
    assert sum(s.startswith("study storage: not answering") for s in lines) == 2, lines  # once a trial
    assert sum(s.startswith("study storage: answering again") for s in lines) == 2, lines
    assert link.refused >= 1


@pytest.mark.slow
def test_a_worker_whose_database_stays_away_ends_naming_what_the_driver_said(tmp_path, link, monkeypatch):
    """It had named Optuna's wrapper ("invalid data in the commit"): the driver's words were its context."""
    from tlcore.errors import StorageUnavailable

    ws = _study_losing_its_database(tmp_path, link, monkeypatch, n_trials=1)
    lines: list[str] = []
    with pytest.raises(StorageUnavailable) as err:
        run_worker(ws, "far", link.url, log=lines.append, storage_patience=2)
    text = str(err.value)
    assert text.startswith("The study storage stopped answering (OperationalError: "), text
    assert "did not answer again within 2 s; this worker stops." in text and "invalid data" not in text, text
    assert any(s.endswith("; giving up") for s in lines), lines
    # its state file says what ended it and keeps the trial that waits on it (it had written trial None, so
    # the status called it "crashed earlier ... none left running" while trial 0 still ran in the storage)
    from tlcore.search.worker_state import WorkerState, list_workers

    (w,) = list_workers(ws, "far")
    assert w.state == WorkerState.CRASHED and w.lost_storage and w.trial == 0, w.data
    assert w.state_text == "lost the database"


def test_the_waiting_log_names_no_password():
    """The driver's words are logged; a driver that quotes the URL must not put its password there."""
    from tlcore.search.patience import _waited

    calls = []

    def flaky(self):
        calls.append(1)
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError(
                "SELECT 1", {}, Exception("could not connect to postgresql://tl:s3cr%40t@db/x (s3cr@t)"))
        return "ok"

    st = PatientRDBStorage.__new__(PatientRDBStorage)  # no engine: only its URL is read
    st.url = "postgresql://tl:s3cr%40t@db/x"
    lines: list[str] = []
    with patient(30, lines.append):
        assert _waited(flaky, "flaky")(st) == "ok"
    assert len(lines) == 2 and "could not connect" in lines[0], lines
    assert not any("s3cr" in line for line in lines), lines


def test_a_running_trial_that_never_beat_is_judged_stale_after_the_grace(fresh_postgres_url):
    """Optuna's RDB storage judged only trials with a heartbeat, so a trial taken by a worker killed before its
    first beat (or created twice by a retried commit) stayed RUNNING for good. The grace counts from when the
    storage first saw it without one; a trial that beats is judged by its beat."""
    st = PatientRDBStorage(fresh_postgres_url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="s", storage=st)
    silent = st.create_new_trial(study._study_id)
    beating = st.create_new_trial(study._study_id)
    st.record_heartbeat(beating)
    assert st._get_stale_trial_ids(study._study_id) == []  # first seen now
    time.sleep(1.0)
    st.record_heartbeat(beating)
    assert st._get_stale_trial_ids(study._study_id) == []
    time.sleep(1.5)
    st.record_heartbeat(beating)
    assert st._get_stale_trial_ids(study._study_id) == [silent]
    optuna.storages.fail_stale_trials(study)
    states = {t._trial_id: t.state for t in study.get_trials()}
    assert states[silent] == TrialState.FAIL and states[beating] == TrialState.RUNNING, states


@pytest.mark.slow
def test_a_trial_created_twice_by_a_lost_answer_does_not_hold_the_study(tmp_path, fresh_postgres_url, monkeypatch):
    """A commit that reached the server but whose answer was lost: the patient retry created the trial again,
    and the first stayed RUNNING with no worker and no heartbeat, so a study whose budget counted it waited on
    it for good ("waiting for 1 running trial(s) of other workers"). Now it is failed after the grace period and
    queued again, and the study finishes."""
    from tlcore.search import patience

    ws = Workspace(tmp_path / "ws")
    add_tiny_dataset(ws)
    create_study(ws, tiny_spec("lossy", n_trials=2, epochs=1), fresh_postgres_url)
    real = RDBStorage._create_new_trial
    lost = []

    def answer_lost_once(self, study_id, template_trial=None):
        made = real(self, study_id, template_trial)
        if not lost:
            lost.append(made.number)
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return made

    monkeypatch.setattr(PatientRDBStorage, "_create_new_trial", patience._waited(answer_lost_once, "_create_new_trial"))
    stop = threading.Event()
    timer = threading.Timer(120, stop.set)  # before: the worker waited for the lost trial until stopped
    timer.start()
    try:
        result = run_worker(ws, "lossy", fresh_postgres_url, heartbeat_interval=1, grace_period=2, stop_event=stop)
    finally:
        timer.cancel()
    trials = optuna.load_study(study_name="lossy", storage=fresh_postgres_url).get_trials()
    assert lost == [0] and result.reason.startswith("budget met"), result
    assert trials[0].state == TrialState.FAIL, [t.state for t in trials]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2, [t.state for t in trials]


def test_a_storage_that_lost_its_connection_watches_silent_trials_afresh(link):
    """What a storage saw before its connection was cut is no watch: a trial taken just before a database
    outage longer than the grace period was failed by another worker the moment the database came back, before
    its own worker, still waiting to reconnect, could send its first beat."""
    st = _storage_beating(link.url)
    study = optuna.create_study(study_name="s", storage=st)
    silent = st.create_new_trial(study._study_id)
    assert st._get_stale_trial_ids(study._study_id) == []  # first seen now
    link.cut()
    with pytest.raises((optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)):
        st.get_all_studies()
    time.sleep(2.5)  # longer than the grace period, while the database is away
    link.restore()
    assert st._get_stale_trial_ids(study._study_id) == []  # seen afresh
    time.sleep(2.5)
    assert st._get_stale_trial_ids(study._study_id) == [silent]


def _storage_beating(url: str) -> PatientRDBStorage:
    return PatientRDBStorage(url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=1, grace_period=2)


def test_a_storage_that_lost_its_connection_judges_no_beat_until_a_grace_after_it_is_back(link, fresh_postgres_url):
    """After an outage longer than the grace period every live trial's last beat is old: a worker whose storage
    had lost its connection (here its own heartbeat failed) failed a trial still training the moment the database
    answered it again, before that trial's beat thread had reached the database. It now waits a grace period
    from then; a trial whose beats do not come back is still judged, one grace period later."""
    from tlcore.search.heartbeat import HeartbeatThread

    judge = _storage_beating(link.url)
    worker = _storage_beating(fresh_postgres_url)  # the trial's own worker, on another route to the database
    study = optuna.create_study(study_name="s", storage=judge)
    mine, live = judge.create_new_trial(study._study_id), worker.create_new_trial(study._study_id)
    judge.record_heartbeat(mine)
    worker.record_heartbeat(live)
    link.cut()
    with pytest.raises((optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)):
        judge.record_heartbeat(mine)  # the judge's beat thread meets the outage
    time.sleep(2.5)  # longer than the grace period: both trials' last beats are old now
    link.restore()
    assert judge._get_stale_trial_ids(study._study_id) == []  # before: [mine, live], failing a live trial
    judge.set_trial_state_values(mine, TrialState.COMPLETE, [0.5])  # the judge's own trial ends
    with HeartbeatThread(worker, live):  # its worker reaches the database again and beats each second
        time.sleep(2.5)
        assert judge._get_stale_trial_ids(study._study_id) == []
    time.sleep(2.5)  # its worker has stopped beating: judged by Optuna's rule again
    assert judge._get_stale_trial_ids(study._study_id) == [live]
