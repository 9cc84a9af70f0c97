"""Run folders written by tfseg before its package was laid out in folders
still open, resume, evaluate and load.

The folder is made here as that version made it: the files of a run are
the same, but its `.keras` files named the optimizer's module
`tfseg.optimizers` (now `tfseg.train.optimizer`). Keras finds a class by
its registered name (`tfseg>SegmentationAdamW`), which did not change; this
test keeps it that way.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import PROJECT_ROOT
from tests.conftest import copy_run
from tfseg import files
from tfseg import runs
from tfseg.cli import main

# Module paths of classes in saved files, as the flat package wrote them.
OLD_MODULES = {"tfseg.train.optimizer": "tfseg.optimizers"}


def write_as_before(path):
    """Rewrites the `.keras` file `path` with the module paths of before."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    text = members["config.json"].decode()
    for new, old in OLD_MODULES.items():
        assert f'"module": "{new}"' in text or path.endswith(runs.MODEL)
        text = text.replace(f'"module": "{new}"', f'"module": "{old}"')
    members["config.json"] = text.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


@pytest.fixture
def old_run(finished_run, tmp_path):
    """A copy of a finished two-epoch run whose checkpoints are as the old
    layout wrote them."""
    run_dir = copy_run(finished_run, tmp_path)
    for name in (runs.LAST, runs.BEST, runs.MODEL):
        write_as_before(os.path.join(run_dir, name))
    with zipfile.ZipFile(os.path.join(run_dir, runs.LAST)) as archive:
        assert '"module": "tfseg.optimizers"' in archive.read("config.json").decode()
    return run_dir


@pytest.mark.slow
def test_an_old_run_resumes_evaluates_and_loads(old_run, tmp_path):
    # Evaluate: the old model.keras, scored again.
    os.remove(os.path.join(old_run, "metrics.json"))
    assert main(["evaluate", old_run]) == 0
    report = files.read_json(os.path.join(old_run, "metrics.json"))
    assert report["images"] > 0 and 0 <= report["training_resolution"]["mean_iou"]

    # Resume: the old last.keras (optimizer and all) trains one epoch more.
    assert main(["train", "--resume", old_run, "--epochs", "3"]) == 0
    state = files.read_json(os.path.join(old_run, runs.STATE))
    assert state["epochs_done"] == 3 and state["finished"]
    rows = runs.history_rows(old_run)
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]

    # Export reads the old folder too.
    out = str(tmp_path / "saved")
    assert main(["export", old_run, "--format", "savedmodel", "--out", out]) == 0
    assert os.path.isdir(out)


@pytest.mark.slow
def test_import_tfseg_then_keras_loads_every_checkpoint(old_run, tmp_path):
    """A user's own code: `import tfseg`, then plain Keras loads the old
    checkpoints (to fine-tune); model.keras loads with no tfseg at all."""
    shutil.copy(os.path.join(old_run, runs.LAST), tmp_path / "last.keras")
    code = (
        "import tfseg, keras\n"
        "for name in ('last.keras', 'best.keras'):\n"
        "    model = keras.models.load_model(name)\n"
        "    print(name, type(model.optimizer).__name__, model.loss.name)\n"
    )
    plain = (
        "import sys, keras\n"
        "model = keras.models.load_model('model.keras')\n"
        "print('tfseg' in sys.modules, model.output_shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    for script, expected in ((code, "SegmentationAdamW"), (plain, "False")):
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=old_run,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert expected in result.stdout, result.stdout


def test_saved_names_are_the_registered_ones(finished_run):
    """What Keras looks classes up by: the registered names stay."""
    with zipfile.ZipFile(os.path.join(finished_run, runs.LAST)) as archive:
        config = json.loads(archive.read("config.json"))
    text = json.dumps(config)
    assert '"registered_name": "tfseg>SegmentationAdamW"' in text
    assert '"registered_name": "tfseg>CrossentropyDiceLoss"' in text
