"""A ``search create`` killed between its two steps: Optuna's study is in the storage, its spec is not.

``create_study`` makes the Optuna study, then stores the spec in it (separate journal records). A kill
in between left a study that ``search list`` and the pages do not show (no spec), that ``search create``
refused ("already exists ... delete the old study first") and that ``search delete`` refused too ("not
made by this workbench"): the name was blocked for good. The crash is reproduced by making the
spec-less study directly, as the killed process leaves it.
"""

from __future__ import annotations

import optuna
import pytest

from tests.helpers.clirun import assert_error, cli
from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore.errors import ConfigError
from tlcore.search import create_study, delete_study, list_studies
from tlcore.search.storage import open_storage


@pytest.fixture
def half_created(workspace):
    """A workspace with the tiny dataset and a study "half" whose creation stopped after Optuna's step."""
    add_tiny_dataset(workspace)
    optuna.create_study(study_name="half", storage=open_storage(workspace, None, create=True))
    return workspace


def test_create_again_says_the_study_is_unfinished_and_how_to_remove_it(half_created):
    with pytest.raises(ConfigError) as err:
        create_study(half_created, tiny_spec("half"))
    assert "unfinished" in str(err.value) and "search delete --study half" in str(err.value.fix)


def test_delete_removes_an_unfinished_study_and_create_then_works(half_created):
    assert delete_study(half_created, "half") == 0
    create_study(half_created, tiny_spec("half"))
    assert [s.name for s in list_studies(half_created)] == ["half"]


def test_the_cli_way_out(half_created, capsys):
    root = half_created.root
    spec_file = root / "half.yaml"
    spec_file.write_text(tiny_spec("half").to_yaml(), encoding="utf-8")
    assert_error(cli(capsys, root, "search", "status", "--study", "half"), "search delete --study half")
    assert_error(cli(capsys, root, "search", "create", "--spec", spec_file), "search delete --study half")
    code, out, err = cli(capsys, root, "search", "delete", "--study", "half", "--yes")
    assert code == 0, err
    code, out, err = cli(capsys, root, "search", "create", "--spec", spec_file)
    assert code == 0, err
    assert "Created study 'half'" in out


def test_a_study_with_trials_but_no_spec_is_still_refused(half_created):
    """A plain Optuna study that has trials (another tool's, in a shared storage) is not the workbench's to
    delete: only an empty, spec-less one is taken for an interrupted creation."""
    study = optuna.load_study(study_name="half", storage=open_storage(half_created, None))
    study.enqueue_trial({"x": 1})
    with pytest.raises(ConfigError, match="not made by this workbench"):
        delete_study(half_created, "half")
    with pytest.raises(ConfigError, match="already exists"):
        create_study(half_created, tiny_spec("half"))
