"""``predict --csv OUT`` writing over an earlier table: a failure while writing (a full disk, a kill) must
leave the earlier file whole, never a table cut in the middle.

The old code opened OUT for writing (emptying it) and wrote into it. The failure mid-write is made
deterministic with a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): every write past the limit fails
with EFBIG, as it would on a full disk.
"""

from __future__ import annotations

import resource
import shutil
import signal

from tests.helpers.handmodel import channel_model, write_model_folder
from tests.helpers.runs import TINY_CLASSES, write_tinted_tree
from tlcore.cli import main


def test_a_failed_csv_write_keeps_the_earlier_table(workspace, capsys, tmp_path):
    write_model_folder(workspace.models_dir / "hand", channel_model(3, 8), TINY_CLASSES)
    photos = write_tinted_tree(workspace.root / "photos", per_class=3)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_csv = out_dir / "predictions.csv"
    earlier = "file,label_1\n" + "".join(f"earlier/{i}.png,cat\n" for i in range(40))
    out_csv.write_text(earlier, encoding="utf-8")

    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))
    try:
        code = main(["--workspace", str(workspace.root), "predict", "run:hand", "--folder", str(photos),
                     "--csv", str(out_csv)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err, (out, err)
    assert err.startswith("error: "), err
    assert out_csv.read_text(encoding="utf-8") == earlier  # the earlier table, whole
    assert sorted(p.name for p in out_dir.iterdir()) == ["predictions.csv"]  # no temporary file left
    shutil.rmtree(out_dir)


def test_a_folder_as_the_csv_path_is_one_clear_error(workspace, capsys, tmp_path):
    write_model_folder(workspace.models_dir / "hand", channel_model(3, 8), TINY_CLASSES)
    photos = write_tinted_tree(workspace.root / "photos", per_class=1)
    code = main(["--workspace", str(workspace.root), "predict", "run:hand", "--folder", str(photos),
                 "--csv", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and err.startswith("error: "), (out, err)
