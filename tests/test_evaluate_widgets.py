"""The Results page's top losses (tlui.evaluate_widgets.top_losses_view): captions that read in order."""

from __future__ import annotations

import re

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.helpers.imagegen import make_image


def _page(res: dict) -> None:
    from tlui.evaluate_widgets import top_losses_view

    top_losses_view(res, "no-run", 0)


def _res(folder) -> dict:
    # Ordered by loss the mistakes are 0, 2, 1, 3; the predicted class's confidence is not ordered
    # (0.90, 0.45, 0.36, 0.50), the true class's probability is (0.05, 0.10, 0.30, 0.49).
    probs = np.array([[0.05, 0.90, 0.05], [0.30, 0.36, 0.34], [0.45, 0.10, 0.45], [0.01, 0.50, 0.49],
                      [0.80, 0.10, 0.10]])
    files = [str(make_image(folder / f"img{i}.png", size=(40, 20), seed=i)) for i in range(len(probs))]
    return {"probabilities": probs, "y_true": np.array([0, 0, 1, 2, 0]), "class_names": ["cat", "dog", "owl"],
            "files": files, "relpaths": [f"x/img{i}.png" for i in range(len(probs))]}


def test_top_losses_show_the_loss_and_the_true_class_probability_in_order(tmp_path):
    at = AppTest.from_function(_page, args=(_res(tmp_path),), default_timeout=60)
    at.session_state["rs_cam"] = False
    at.run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    captions = [img.proto.imgs[0].caption.replace("\\", "") for img in at.get("image")]
    assert [re.search(r"img\d", c).group() for c in captions] == ["img0", "img2", "img1", "img3"]
    assert all("loss" in c for c in captions), captions
    losses = [float(re.search(r"loss (\d+\.\d+)", c).group(1)) for c in captions]
    assert losses == sorted(losses, reverse=True) and losses[0] == round(-np.log(0.05), 2)
    true_probs = [re.search(r"true (\w+) at ([\d.]+) %", c).groups() for c in captions]
    assert true_probs == [("cat", "5.0"), ("dog", "10.0"), ("cat", "30.0"), ("owl", "49.0")]
    assert "predicted dog at 90.0 %" in captions[0]  # what it said instead comes after
    assert captions[0].index("loss") < captions[0].index("true") < captions[0].index("predicted")


def test_the_evaluation_cache_key_changes_with_a_decision(workspace):
    """Results' evaluation and Predict's TTA check are cached by dataset_token: an excluded test image
    (or its decision undone) must give a new key, so that the page evaluates again as the CLI does."""
    import json as _json

    from tests.helpers.searchfix import add_tiny_dataset
    from tlcore.datasets import add_overrides, load_index, undo_overrides
    from tlui.data import dataset_token

    add_tiny_dataset(workspace)
    run = workspace.models_dir / "r"
    run.mkdir(parents=True)
    (run / "data.json").write_text(_json.dumps({"dataset": "tiny"}))
    before = dataset_token(workspace, run)
    assert before.startswith("tiny|")
    first = str(load_index(workspace, "tiny")["relpath"].iloc[0])
    [d] = add_overrides(workspace, "tiny", [first], "exclude")
    excluded = dataset_token(workspace, run)
    assert excluded != before
    undo_overrides(workspace, "tiny", seqs=[d.seq])
    assert dataset_token(workspace, run) not in (excluded, "")
