"""`tfseg verify-data DIR` on folders other than the pets': the layout, the
splits, the classes with their share of the training pixels, one `BROKEN`
line per broken file, `--write-dataset`.

Each test writes a tiny dataset (64x96 px, 8 pairs) with PIL in `tmp_path`
(`write_folder`, which `tests/test_own_data_misuse.py` uses too) and runs
the command as `tfseg` does (`cli_main`, output read from the descriptors).
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PROJECT_ROOT
from tests.conftest import SHARED_DATA
from tfseg.cli import main as cli_main
from tfseg.data import write_synthetic_pets
from tfseg.data.dataset import DatasetDescription
from tfseg.data.dataset import read_dataset_json
from tfseg.data.described import folder_description

HEIGHT, WIDTH = 64, 96
COLORS = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 255: (255, 255, 255)}


def stripes(values):
    """A mask of vertical bands, one per value, as wide as each other."""
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    for index, value in enumerate(values):
        mask[:, index * WIDTH // len(values) : (index + 1) * WIDTH // len(values)] = (
            value
        )
    return mask


def write_folder(root, values=(0, 1, 2), layout="split", count=8, val=2, **options):
    """A dataset folder of `count` pairs, the last `val` of them in val.

    Args:
        root: the folder (a `pathlib.Path`).
        values: each mask's values, in bands; or `values(split, index)`.
        layout: "split" (train/ + val/, each images/ + masks/), "segnet"
            (train/ + trainannot/, with lists of another machine's paths) or
            "single" (images/ + masks/).
        count, val: the pairs, and how many of them are val's.
        options: `description` (written as dataset.json), `rgb` (colour
            masks through `COLORS`).

    Returns:
        `root`.
    """
    rng = np.random.default_rng(0)
    lines = {}
    for index in range(count):
        split = "val" if index >= count - val else "train"
        image_dir, mask_dir = {
            "split": (f"{split}/images", f"{split}/masks"),
            "segnet": (split, f"{split}annot"),
            "single": ("images", "masks"),
        }[layout]
        name = f"{split}_{index}"
        for folder in (image_dir, mask_dir):
            (root / folder).mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8)
        Image.fromarray(image).save(root / image_dir / f"{name}.jpg", quality=90)
        mask = stripes(values(split, index) if callable(values) else values)
        if options.get("rgb"):
            mask = np.array([COLORS.get(v, (9, 9, 9)) for v in range(256)], np.uint8)[
                mask
            ]
        Image.fromarray(mask).save(root / mask_dir / f"{name}.png")
        elsewhere = "/SegNet/CamVid"  # the lists' paths, of another machine
        lines.setdefault(split, []).append(
            f"{elsewhere}/{image_dir}/{name}.jpg {elsewhere}/{mask_dir}/{name}.png"
        )
    if layout == "segnet":
        for split, written in lines.items():
            (root / f"{split}.txt").write_text("\n".join(written) + "\n")
    if options.get("description"):
        (root / "dataset.json").write_text(json.dumps(options["description"]))
    return root


def verify(capfd, *argv):
    """`(exit code, what was printed)` of `tfseg verify-data ARGV`."""
    code = cli_main(["verify-data", *map(str, argv)])
    output = capfd.readouterr()
    said = output.out + output.err
    assert "Traceback" not in said
    return code, said


def broken_lines(said):
    return [line for line in said.splitlines() if line.startswith("BROKEN ")]


# -- the report ---------------------------------------------------------------


def test_the_report_gives_layout_splits_classes_and_their_shares(tmp_path, capfd):
    # Training masks: 0 and 1 everywhere, 255 (void) in half of them; val: 2.
    def values(split, index):
        return (2,) if split == "val" else ((0, 1, 255) if index % 2 else (0, 1))

    description = {
        "classes": ["sky", "road", "car"],
        "ignore": [255],
        "colors": [[10, 20, 30], [40, 50, 60], [70, 80, 90]],
    }
    write_folder(tmp_path, values, description=description)
    code, said = verify(capfd, tmp_path)
    assert code == 0, said
    lines = said.splitlines()
    layout = "split folders (train/, val/, test/, each images + masks)"
    assert lines[0] == f"layout: {layout} in {tmp_path}"
    assert "  paired 6 images in train/images/ with train/masks/" in lines
    assert "splits: train 6, val 2, test 2" in lines
    assert "  no test split: the test report scores the val split" in lines
    assert f"classes: 3, id masks, from {tmp_path / 'dataset.json'}" in lines
    # Of 6 x 6144 training pixels: 3 masks half 0 half 1, 3 in thirds.
    table = [line.split() for line in lines if line.startswith("   ")]
    assert table == [
        ["0", "sky", "0", "10,20,30", "41.7%"],
        ["1", "road", "1", "40,50,60", "41.7%"],
        ["2", "car", "2", "70,80,90", "0.0%"],
    ]
    assert "  void: 255 (16.7% of training pixels)" in lines
    assert "  warning: no training mask holds 'car': the model cannot learn it" in said
    assert lines[-1] == f"8 image/mask pairs checked in {tmp_path}: 0 problem(s)."
    assert not broken_lines(said)


def test_segnet_lists_of_another_machine_and_a_folder_without_splits(tmp_path, capfd):
    write_folder(tmp_path / "segnet", layout="segnet")
    code, said = verify(capfd, tmp_path / "segnet")
    assert code == 0, said
    assert "layout: SegNet's (train/ + trainannot/, val/ + valannot/, ...)" in said
    assert "  paired 6 images in train/ with trainannot/ (listed in train.txt)" in said
    write_folder(tmp_path / "single", layout="single", count=10)
    code, said = verify(capfd, tmp_path / "single")
    assert code == 0, said
    assert "layout: one images folder and one masks folder, no splits" in said
    assert "splits: train 7, val 1, test 2" in said
    assert (
        f"  no splits in {tmp_path / 'single'}: 7 train, 1 val, 2 test (seed 0)" in said
    )


def test_classes_found_in_the_masks_say_so(tmp_path, capfd):
    write_folder(tmp_path, values=(0, 7, 255))  # 255 beside two values: void
    code, said = verify(capfd, tmp_path)
    assert code == 0, said
    assert "classes: 2, id masks, found in the masks" in said
    assert f"({tmp_path} has no dataset.json; to name them" in said
    assert ["1", "class_7", "7", "33.3%"] in [
        line.split() for line in said.splitlines()
    ]
    assert "  void: 255 (33.3% of training pixels)" in said


# -- one line per broken file ---------------------------------------------------


def undeclared(root):
    write_folder(root, description={"classes": ["a", "b"]})  # value 2 too


def rgb_without_colors(root):
    write_folder(root, rgb=True, description={"classes": ["a", "b", "c"]})


def colour_not_in_table(root):
    colors = [list(COLORS[0]), list(COLORS[1])]
    write_folder(
        root,
        rgb=True,
        description={"classes": ["a", "b"], "masks": "rgb", "colors": colors},
    )


def unpaired(root):
    write_folder(root)
    os.remove(root / "train/masks/train_0.png")
    os.remove(root / "val/images/val_7.jpg")


def jpeg_mask(root):
    write_folder(root)
    Image.open(root / "train/masks/train_1.png").save(root / "train/masks/train_1.jpg")
    os.remove(root / "train/masks/train_1.png")


def other_size(root):
    write_folder(root)
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(root / "train/masks/train_1.png")


def truncated_image(root):
    write_folder(root)
    path = root / "train/images/train_2.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


UNDECLARED = "that dataset.json does not declare (as a class or in `ignore`)"
BROKEN = [
    (undeclared, 8, "BROKEN train/masks/train_0.png: 2048 px of 1 value(s) "
     f"{UNDECLARED}: 2 (2048 px)"),
    (rgb_without_colors, 8, "BROKEN val/masks/val_7.png: an RGB colour mask, but "
     'dataset.json gives no colour table: add "masks": "rgb"'),
    (colour_not_in_table, 8, "BROKEN train/masks/train_3.png: 2048 px of 1 "
     f"colour(s) {UNDECLARED}: (0, 128, 0) (2048 px)"),
    (unpaired, 2, "BROKEN train/images/train_0.jpg: image without a mask in "
     "train/masks/"),
    (unpaired, 2, "BROKEN val/masks/val_7.png: mask without an image in val/images/"),
    (jpeg_mask, 1, "BROKEN train/masks/train_1.jpg: a JPEG mask, refused: JPEG is "
     "lossy"),
    (other_size, 1, "BROKEN train/masks/train_1.png: mask is 40x30 px but its "
     "image train_1.jpg is 96x64 px"),
    (truncated_image, 1, "BROKEN train/images/train_2.jpg: the image cannot be "
     "read"),
]  # fmt: skip


@pytest.mark.parametrize(
    "breaker, count, line", BROKEN, ids=[f"{b[0].__name__}-{b[1]}" for b in BROKEN]
)
def test_each_broken_file_gets_its_line_and_exit_code_1(
    tmp_path, capfd, breaker, count, line
):
    breaker(tmp_path)
    code, said = verify(capfd, tmp_path)
    assert code == 1, said
    broken = broken_lines(said)
    assert len(broken) == count, broken
    assert any(found.startswith(line) for found in broken), (line, broken)
    assert f"checked in {tmp_path}: {count} problem(s)." in said
    assert "--skip-bad" in said.splitlines()[-1]


def test_undeclared_training_pixels_are_summed_under_the_classes(tmp_path, capfd):
    undeclared(tmp_path)
    _, said = verify(capfd, tmp_path)
    assert "  undeclared: 2 (33.3% of training pixels)" in said


def test_masks_of_both_kinds_are_named_not_a_traceback(tmp_path, capfd):
    write_folder(tmp_path)
    mask = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    mask[:, :10] = (128, 0, 0)
    Image.fromarray(mask).save(tmp_path / "train/masks/train_3.png")
    code, said = verify(capfd, tmp_path)
    assert code == 1, said
    assert "1 of its 8 masks are colour (RGB) images, e.g. " in said
    assert "train/masks/train_3.png, the others single-channel" in said


# -- --write-dataset ------------------------------------------------------------


def test_write_dataset_writes_what_training_would_find(tmp_path, capfd):
    root = write_folder(tmp_path / "data", values=(0, 3, 255), layout="single")
    code, said = verify(capfd, root, "--write-dataset")
    assert code == 0, said
    written = root / "dataset.json"
    assert f"wrote {written}: the description above, to edit" in said
    assert read_dataset_json(written) == DatasetDescription(
        ["class_0", "class_3"], ignore=[255], mask_values=[0, 3]
    )
    # Never overwritten: exit 2, one line, the file as it was.
    before = written.read_bytes()
    code, said = verify(capfd, root, "--write-dataset")
    assert code == 2
    assert said.splitlines() == [
        f"error: --write-dataset: {written} exists already, and is never "
        "overwritten. Edit it, remove it first, or write another file with "
        "--write-dataset FILE."
    ]
    assert written.read_bytes() == before


def test_write_dataset_file_round_trips_a_full_description(tmp_path, capfd):
    description = {
        "classes": ["a", "b"],
        "ignore": [list(COLORS[255])],
        "colors": [list(COLORS[0]), list(COLORS[1])],
        "masks": "rgb",
        "splits": {"train": {"images": "train/images", "masks": "train/masks"}},
    }
    root = write_folder(tmp_path / "data", values=(0, 1, 255), rgb=True, val=0)
    given = tmp_path / "given.json"
    given.write_text(json.dumps(description))
    out = tmp_path / "copy.json"
    code, said = verify(capfd, root, "--dataset", given, "--write-dataset", out)
    assert code == 0, said
    assert f"from --dataset {given}" in said
    assert 'layout: dataset.json\'s "splits"' in said
    assert read_dataset_json(out) == DatasetDescription.from_dict(description)
    assert folder_description(root, str(out)) == read_dataset_json(given)


@pytest.mark.parametrize(
    "target, words",
    [
        ("folder", "is a folder: pass the file to write"),
        ("missing/dataset.json", "does not exist"),
    ],
)
def test_write_dataset_refuses_a_path_it_cannot_write(tmp_path, capfd, target, words):
    root = write_folder(tmp_path / "data")
    (tmp_path / "folder").mkdir()
    code, said = verify(capfd, root, "--write-dataset", tmp_path / target)
    assert code == 2
    assert len(said.splitlines()) == 1 and said.startswith("error: --write-dataset")
    assert words in said
    assert not (root / "dataset.json").exists()


# -- the pets, CamVid, no TensorFlow -----------------------------------------------


def test_the_pets_keep_their_report_and_refuse_a_description(tmp_path, capfd):
    write_synthetic_pets(tmp_path, 6, seed=3)
    code, said = verify(capfd, tmp_path)
    assert code == 0, said
    assert (
        said.splitlines()[-1]
        == f"6 image/trimap pairs checked in {tmp_path}: 0 problem(s)."
    )
    assert "layout:" not in said
    for flag in (["--dataset", tmp_path / "x.json"], ["--write-dataset"]):
        code, said = verify(capfd, tmp_path, *flag)
        assert code == 2
        assert "is in Oxford-IIIT Pet's layout" in said and f"drop {flag[0]}" in said
    assert not (tmp_path / "dataset.json").exists()


def test_a_folder_of_no_layout_names_the_pets_layout_too(tmp_path, capfd):
    (tmp_path / "photos").mkdir()
    code, said = verify(capfd, tmp_path)
    assert code == 2
    assert said.startswith(f"error: {str(tmp_path)!r} holds no layout tfseg knows")
    assert "Oxford-IIIT Pet's images/ + annotations/trimaps/" in said


def test_camvid_is_checked_in_seconds(capfd):
    root = SHARED_DATA / "camvid"
    if not root.is_dir():
        pytest.skip(f"CamVid not found at {root}")
    started = time.monotonic()
    code, said = verify(capfd, root, "--dataset", PROJECT_ROOT / "examples/camvid.json")
    seconds = time.monotonic() - started
    assert code == 0, said
    assert (
        "  paired 367 images in train/ with trainannot/ (listed in train.txt)" in said
    )
    assert "splits: train 367, val 101, test 101" in said
    rows = [line.split() for line in said.splitlines()]
    assert ["3", "Road", "3", "128,64,128", "31.7%"] in rows
    assert "  void: 11 (3.9% of training pixels)" in said
    assert (
        said.splitlines()[-1]
        == f"468 image/mask pairs checked in {root}: 0 problem(s)."
    )
    assert seconds < 30  # about 2 s alone on one core


def test_verify_data_of_a_folder_imports_no_tensorflow(tmp_path):
    write_folder(tmp_path, description={"classes": ["a", "b"]})  # broken: exit 1
    code = (
        "import sys; from tfseg.cli import main; code = main(['verify-data', "
        f"{str(tmp_path)!r}]); assert 'tensorflow' not in sys.modules; sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    assert "8 problem(s)" in result.stdout
