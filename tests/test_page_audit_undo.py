"""The Audit tab's decisions list, clicked as careless users do (helper B)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.helpers import auditgen as ag
from tlcore.audit import AuditSpec, audit_dataset
from tlcore.datasets import add_dataset, add_overrides, load_overrides

NAME = "photos"
FAST = AuditSpec(weights=None, image_size=32, folds=3, batch_size=16)
AUDIT_TAB = 4  # Overview, Samples, Problems, Split, Audit


def _page() -> AppTest:
    at = AppTest.from_file("../streamlit_app.py", default_timeout=90)
    at.switch_page("pages/1_Datasets.py")
    at.query_params["dataset"] = NAME
    at.session_state["ds_tab"] = AUDIT_TAB
    return at.run()


def test_undo_the_last_decision_twice_on_a_stale_page_undoes_only_the_one_shown(workspace):
    """Two tabs (or a second click that reaches a page not yet redrawn) both show decision 3 as the last one:
    the second 'Undo the last decision' undid decision 2 too, which nobody asked for, and said nothing of 3."""
    root = ag.photo_tree(workspace.root / NAME, {"cat": 6, "dog": 6}, size=(40, 32))
    add_dataset(workspace, NAME, root)
    audit_dataset(workspace, NAME, FAST)
    for i, action in enumerate(("exclude", "keep", "exclude")):
        add_overrides(workspace, NAME, [f"cat/cat_{i:03d}.png"], action)
    first, second = _page(), _page()
    assert not first.exception and not second.exception
    first.button(key=f"aud_undo_last::{NAME}").click().run()
    assert [d.seq for d in load_overrides(workspace, NAME)] == [1, 2]
    second.button(key=f"aud_undo_last::{NAME}").click().run()
    assert not second.exception
    assert [d.seq for d in load_overrides(workspace, NAME)] == [1, 2]
    said = " ".join(x.value for x in [*second.info, *second.warning, *second.success])
    assert "already undone" in said, said
