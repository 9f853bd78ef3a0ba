"""Two processes adding the same dataset name at once: the second to finish is refused, the first keeps its
registration and its index."""

from __future__ import annotations

import pytest

from tlcore.datasets import _ops, add_dataset, load_index
from tlcore.errors import ConfigError


def test_a_name_added_by_another_process_during_the_scan_is_refused_and_kept(workspace, make_image_tree, monkeypatch):
    theirs = make_image_tree(workspace.root / "theirs", {"cat": 3, "dog": 3})
    mine = make_image_tree(workspace.root / "mine", {"ant": 2, "bee": 2, "cow": 2})
    real_scan = _ops.scan_dataset
    other_added = []

    def scan_while_another_adds(root, **kw):
        if not other_added:  # the other process registers 'photos' while this one scans
            other_added.append(True)
            add_dataset(workspace, "photos", theirs)
        return real_scan(root, **kw)

    monkeypatch.setattr(_ops, "scan_dataset", scan_while_another_adds)
    with pytest.raises(ConfigError, match="already registered"):
        add_dataset(workspace, "photos", mine)
    assert workspace.get_dataset("photos").path == str(theirs.resolve())
    assert sorted(load_index(workspace, "photos")["label"].unique()) == ["cat", "dog"]
