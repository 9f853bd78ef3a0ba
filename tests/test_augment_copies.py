"""A study and a training job keep their own copy of the saved augmentation pipeline they name.

Deleting or overwriting the saved pipeline afterwards (on the Augmentations page, in another
tab, while a study runs) changes nothing they train: a study's trials take the copy stored
with the study (``attrs.AUGMENT``), a Train-page job the copy in its folder (``augment.yaml``).
Before, every trial looked the name up again, and a deleted pipeline failed every later
trial of a running study; an overwritten one changed the augmentation between trials.
"""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from tests.helpers.searchfix import add_tiny_dataset, tiny_spec
from tlcore import augment as au
from tlcore import train_jobs as tj
from tlcore.cli import main
from tlcore.config import TrainSpec
from tlcore.errors import NotFoundError
from tlcore.runfolder import RunFolder
from tlcore.search import attrs, create_study, list_studies, load_study, run_worker

FLIP = au.AugmentSpec(steps=[("HorizontalFlip", {"p": 1.0})])
OTHER = au.AugmentSpec(steps=[("VerticalFlip", {"p": 1.0})])


@pytest.fixture
def built(monkeypatch) -> list[au.AugmentSpec]:
    """The ``AugmentSpec`` of every pipeline the trainer builds, in order."""
    seen: list[au.AugmentSpec] = []
    real = au.build_pipeline

    def spy(spec, *args, **kw):
        seen.append(spec)
        return real(spec, *args, **kw)

    monkeypatch.setattr(au, "build_pipeline", spy)
    return seen


def test_a_study_trains_with_the_pipeline_it_was_created_with(workspace, built):
    add_tiny_dataset(workspace)
    au.save_pipeline(workspace, "mine", FLIP)
    create_study(workspace, tiny_spec("s", augment="mine", n_trials=2, aug_copies=1))
    assert attrs.augment_copy(load_study(workspace, "s").user_attrs, "mine") == FLIP.to_dict()

    au.save_pipeline(workspace, "mine", OTHER, overwrite=True)  # changed after the study was made
    built.clear()  # saving builds the pipeline too (for its albumentations dict)
    run_worker(workspace, "s", max_trials=1, log=lambda s: None)
    au.delete_pipeline(workspace, "mine")  # and then deleted while the study still has trials to run
    run_worker(workspace, "s", log=lambda s: None)

    trials = load_study(workspace, "s").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, [attrs.error(t) for t in trials]
    assert built and all(spec == FLIP for spec in built)


def test_a_study_naming_a_pipeline_that_is_not_saved_is_refused_and_not_created(workspace):
    add_tiny_dataset(workspace)
    with pytest.raises(NotFoundError, match="No augmentation pipeline is saved under that name"):
        create_study(workspace, tiny_spec("s", augment="typo"))
    assert list_studies(workspace) == []


def test_a_preset_is_not_copied(workspace):
    add_tiny_dataset(workspace)
    study = create_study(workspace, tiny_spec("s", augment="light"))
    assert attrs.AUGMENT not in study.user_attrs


def test_a_job_keeps_its_copy_and_the_process_trains_with_it(workspace, built, capsys):
    add_tiny_dataset(workspace)
    au.save_pipeline(workspace, "mine", FLIP)
    spec = TrainSpec(dataset="tiny", weights=None, image_size=32, epochs=1, batch_size=8, augment="mine",
                     aug_copies=1)
    job = tj.register_job(workspace, spec, source="page")  # what launch_training makes before its process
    assert job.read_augmentation("mine") == FLIP
    assert job.read_augmentation("other") is None  # a copy is only of the pipeline it names

    au.delete_pipeline(workspace, "mine")  # deleted while the job's process loads TensorFlow
    built.clear()
    with pytest.raises(NotFoundError):  # looked up by name, it is gone
        tj.check_spec(workspace, spec)
    assert main(["--workspace", str(workspace.root), "train", "--spec", str(job.spec_file),
                 "--job", job.id]) == 0, capsys.readouterr().err
    status = tj.job_status(job)
    assert status.status == "finished" and RunFolder(status.run_dir).is_complete()
    assert built and all(s == FLIP for s in built)


def test_a_job_naming_a_pipeline_that_is_not_saved_leaves_no_job(workspace):
    add_tiny_dataset(workspace)
    spec = TrainSpec(dataset="tiny", weights=None, image_size=32, epochs=1, augment="typo")
    with pytest.raises(NotFoundError):
        tj.register_job(workspace, spec)
    assert tj.list_jobs(workspace) == []
