"""``search resume`` killed after queueing the interrupted trials again, before recording that it did.

``resume_study`` queues a copy of each interrupted trial, then records their numbers in the study
(``REQUEUED``) so that a second resume does not queue them again. A kill in between made the next
resume queue every one of them a second time: the study trained the same configurations twice. The
kill is reproduced by making the recording step raise, as a killed process never gets to it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from optuna.trial import TrialState

from tests.helpers.handstudy import hand_study, hand_trial
from tlcore.search import attrs, load_study, resume_study
from tlcore.search import study as study_mod


class _Killed(BaseException):
    pass


def test_a_resume_killed_before_recording_does_not_queue_the_trials_twice(workspace, monkeypatch):
    t0 = dt.datetime(2026, 1, 1)
    hand_study(workspace, "rs", [
        hand_trial(t0, 0, 10, value=0.5),
        hand_trial(t0, 11, 20, state=TrialState.FAIL, learning_rate=2e-3, **{attrs.INTERRUPTED: True}),
        hand_trial(t0, 21, 30, state=TrialState.FAIL, learning_rate=3e-3, **{attrs.INTERRUPTED: True}),
    ])
    real_open = study_mod.open_storage

    def killed_before_recording(*a, **kw):
        st = real_open(*a, **kw)

        class _Storage:
            def __getattr__(self, name):
                return getattr(st, name)

            def set_study_user_attr(self, sid, key, value):
                if key == attrs.REQUEUED:
                    raise _Killed()
                return st.set_study_user_attr(sid, key, value)

        return _Storage()

    monkeypatch.setattr(study_mod, "open_storage", killed_before_recording)
    with pytest.raises(_Killed):
        resume_study(workspace, "rs")
    monkeypatch.setattr(study_mod, "open_storage", real_open)

    assert resume_study(workspace, "rs") == 0  # both were queued by the killed resume
    waiting = [t for t in load_study(workspace, "rs").get_trials(deepcopy=False) if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs[attrs.RETRY_OF] for t in waiting) == [1, 2]
