"""The mistakes of your own data, each through `tfseg` as typed: one table.

Each row: a tiny dataset folder (`write_folder`: 64x96 px, 8 pairs, made
with PIL) broken one way, the command, the words its message must hold.
Every row exits 2 with one `error: ...` (a list of broken files is one
`error:` line saying the count, then a line per file), no traceback, and no
output folder left behind. Then two rows of a real run: a class no training
mask holds (a warning, the run trains and scores it), and that run scored on
a folder of other classes (refused, naming both counts).
"""

import contextlib
import dataclasses
import io
import math
import os
from collections.abc import Callable

import pytest

from tests.conftest import small_model_flags
from tests.data.test_verify_folders import UNDECLARED
from tests.data.test_verify_folders import jpeg_mask
from tests.data.test_verify_folders import other_size
from tests.data.test_verify_folders import unpaired
from tests.data.test_verify_folders import write_folder
from tests.test_misuse import folder_digests
from tfseg import files
from tfseg.cli import main as cli_main
from tfseg.console import is_noise
from tfseg.data import write_synthetic_pets

TINY = [
    *small_model_flags("unet"),
    *["--image-size", "64x96", "--max-examples", "8", "--epochs", "1"],
    *["--batch-size", "4"],
]


@dataclasses.dataclass
class Row:
    """`setup(root)` writes the data under `root`; `flags` follow
    `tfseg train --data-dir root/data --output-dir root/runs`."""

    name: str
    setup: Callable
    words: tuple
    flags: tuple = tuple(TINY)
    before_data: bool = False  # refused before any data is decoded


def described(description, **options):
    return lambda root: write_folder(root, description=description, **options)


def syntax_error(root):
    write_folder(root)
    (root / "dataset.json").write_text('{\n  "classes": ["a", "b"\n  "ignore": []\n}\n')


TWO_COLOURS = {
    "classes": ["a", "b"],
    "masks": "rgb",
    "colors": [[0, 0, 0], [128, 0, 0]],
}
ROWS = [
    Row(
        "a mask value that is not declared",
        described({"classes": ["a", "b"]}),
        ("error: 8 broken example(s):", "train/masks/train_0.png: 2048 px of 1 "
         f"value(s) {UNDECLARED}: 2 (2048 px)", "--skip-bad"),
    ),
    Row(
        "an image without a mask, and a mask without an image",
        unpaired,
        ("error: 2 broken example(s):",
         "  train/images/train_0.jpg: image without a mask in train/masks/",
         "  val/masks/val_7.png: mask without an image in val/images/"),
    ),
    Row(
        "a mask of another size than its image",
        other_size,
        ("error: 1 broken example(s):",
         "train/masks/train_1.png: mask is 40x30 px but its image train_1.jpg is "
         "96x64 px"),
    ),
    Row(
        "a JPEG mask",
        jpeg_mask,
        ("error: 1 broken example(s):", "  train/masks/train_1.jpg: a JPEG mask, "
         "refused: JPEG is lossy", "save the masks as PNG"),
    ),
    Row(
        "RGB masks without colors",
        described({"classes": ["a", "b", "c"]}, rgb=True),
        ("error: 8 broken example(s):", "val/masks/val_7.png: an RGB colour mask, "
         'but dataset.json gives no colour table: add "masks": "rgb" and "colors"'),
    ),
    Row(
        "a colour that is not in the table",
        described(TWO_COLOURS, rgb=True),
        ("error: 8 broken example(s):", "train/masks/train_3.png: 2048 px of 1 "
         f"colour(s) {UNDECLARED}: (0, 128, 0) (2048 px)"),
    ),
    Row(
        "an ignore value that is also a class",
        described({"classes": ["a", "b", "c"], "ignore": [2]}),
        ("dataset.json: `ignore` value 2 is also the mask value of class 'c'; a "
         "value is either a class or void",),
    ),
    Row(
        "a dataset.json with a syntax error",
        syntax_error,
        ("dataset.json, line 3, column 3: Expecting ',' delimiter (dataset.json is "
         "not valid JSON).",),
    ),
    Row(
        "--image-size 350x480 for the default model",
        described({"classes": ["a", "b", "c"]}),
        ("error: --image-size 350x480: mobilenet_unet (mobilenet_v2 encoder) needs "
         "sides divisible by 32", "pass --image-size 320x480 or 352x480."),
        ("--image-size", "350x480", "--max-examples", "8", "--epochs", "1"),
        before_data=True,
    ),
]  # fmt: skip


def run_tfseg(capfd, argv):
    """`(exit code, what was printed)` of `tfseg ARGV`, with the checks
    every row shares: no traceback, no native noise."""
    code = cli_main([str(arg) for arg in argv])
    output = capfd.readouterr()  # file descriptors: native libraries' lines too
    said = output.out + output.err
    assert "Traceback" not in said
    assert not [line for line in said.splitlines() if is_noise(line)]
    return code, said


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_each_mistake_of_own_data_gets_one_clear_error(row, tmp_path, capfd):
    data, output_dir = tmp_path / "data", tmp_path / "runs"
    row.setup(data)
    before = folder_digests(data)
    argv = ["train", "--data-dir", data, "--output-dir", output_dir, *row.flags]
    code, said = run_tfseg(capfd, argv)
    assert code == 2, said[-3000:]
    for words in row.words:
        assert words in said, (words, said[-3000:])
    errors = [line for line in said.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, said[-3000:]
    assert not output_dir.exists()  # no run folder, no output folder
    assert folder_digests(data) == before  # and no dataset.json written
    if row.before_data:
        assert "decoding" not in said and "paired" not in said, said


# -- a real run of a described folder ----------------------------------------------


def twelve_values(split, index):
    """Class 11 in the val masks only; classes 0-10 in the training ones."""
    return tuple(range(12)) if split == "val" else tuple(range(11))


@pytest.fixture(scope="module")
def twelve_class_run(tmp_path_factory):
    """`(run folder, exit code, what it printed)` of a 12-class run whose
    training masks never hold class 11."""
    root = tmp_path_factory.mktemp("twelve")
    names = [f"k{value}" for value in range(12)]
    write_folder(root / "data", twelve_values, description={"classes": names})
    argv = ["train", "--data-dir", root / "data", "--output-dir", root / "runs"]
    argv += [*TINY, "--run-name", "twelve"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = cli_main([str(arg) for arg in argv])
    return str(root / "runs" / "twelve"), code, printed.getvalue()


def test_a_class_absent_from_training_is_a_warning_and_still_scored(
    twelve_class_run,
):
    run, code, said = twelve_class_run
    assert code == 0, said[-3000:]
    assert (
        "warning: no training mask holds 'k11': the model cannot learn it; scored "
        "wherever the test masks hold it." in said
    )
    assert "error:" not in said and "Traceback" not in said
    # Scored where the test masks hold it: a number (NaN, null, where none do).
    report = files.read_json(os.path.join(run, "metrics.json"))
    assert report["class_names"][11] == "k11"
    assert len(report["training_resolution"]["iou"]) == 12
    assert math.isfinite(report["training_resolution"]["iou"][11])


def test_a_run_is_not_scored_on_a_folder_of_other_classes(
    twelve_class_run, tmp_path, capfd
):
    run, code, _ = twelve_class_run
    assert code == 0
    pets = tmp_path / "pets"
    write_synthetic_pets(pets, 6, seed=3)
    before = folder_digests(run)
    code, said = run_tfseg(capfd, ["evaluate", run, "--data-dir", pets])
    assert code == 2, said[-3000:]
    assert said.splitlines() == [
        "error: The model was trained on 12 classes (k0, k1, k2, k3, k4, k5, ...) "
        f"but {pets} has 3 (pet, background, border). Score it on data of the "
        "same classes, or pass --dataset FILE with the run's classes for this "
        "folder."
    ]
    assert folder_digests(run) == before  # no report written
