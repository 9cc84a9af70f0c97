"""Your own data's classes and colours reach every output: `tfseg predict`
(mask, palette PNG, legend), `tfseg export` (the sidecar, int8
calibration), an exported model used alone (`evaluate`, `predict`, the
demo), the demo of a run, and `tfseg compare`'s command and tables.

The data is generated here (12 photos of 64 x 96 with 4 classes and a void
value, described by a dataset.json with names and colours); one tiny run
trains on it at 32 x 48 for every test of the module.
"""

import argparse
import csv
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import small_model_flags
from tfseg import files
from tfseg.cli import main as cli_main

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated"),
    pytest.mark.filterwarnings("ignore:In the future `np.object`:FutureWarning"),
]

NAMES = ["sky", "road", "car", "tree"]
# Saturated colours, none of them the pets' (orange, cyan).
COLOURS = [[0, 200, 80], [220, 30, 30], [40, 60, 230], [230, 200, 0]]
VOID_VALUE = 9  # the masks' void value (dataset.json's "ignore")
HEIGHT, WIDTH = 64, 96
TRAIN_SIZE = "32x48"


def write_dataset(root, count=12, with_json=True):
    """`count` photos and masks in `root/images`, `root/masks`: four bands
    of classes (0 to 3), a void stripe, and noise; a dataset.json naming the
    classes with `COLOURS` where `with_json`."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index in range(count):
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        for band in range(4):
            mask[:, band * WIDTH // 4 : (band + 1) * WIDTH // 4] = (band + index) % 4
        mask[index * 4 : index * 4 + 3] = VOID_VALUE
        image = np.asarray(COLOURS + [[0, 0, 0]] * 6, np.float32)[mask]
        image += rng.normal(0, 20, image.shape)
        name = f"frame_{index:02d}.png"
        photo = Image.fromarray(image.clip(0, 255).astype(np.uint8))
        photo.save(root / "images" / name)
        Image.fromarray(mask).save(root / "masks" / name)
    if with_json:
        description = {"classes": NAMES, "ignore": [VOID_VALUE], "colors": COLOURS}
        (root / "dataset.json").write_text(json.dumps(description))
    return root


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("own") / "streets")


@pytest.fixture(scope="module")
def bare_data(own_data, tmp_path_factory):
    """The same photos and masks without a dataset.json."""
    target = tmp_path_factory.mktemp("bare") / "streets"
    shutil.copytree(own_data, target)
    os.remove(target / "dataset.json")
    return target


@pytest.fixture(scope="module")
def own_run(own_data, tmp_path_factory):
    """One tiny U-Net run on `own_data` at 32 x 48 (tests must not change it)."""
    output_dir = tmp_path_factory.mktemp("runs")
    flags = ["--data-dir", str(own_data), "--image-size", TRAIN_SIZE]
    flags += [*small_model_flags("unet"), "--epochs", "1", "--batch-size", "4"]
    flags += ["--output-dir", str(output_dir), "--run-name", "own"]
    assert cli_main(["train", *flags]) == 0
    return str(output_dir / "own")


def palette_of(picture):
    """The first `len(NAMES)` palette entries of a palette PNG (a path or
    an open image)."""
    if not isinstance(picture, Image.Image):
        with Image.open(picture) as opened:
            return palette_of(opened)
    assert picture.mode == "P"
    return np.asarray(picture.getpalette()[: 3 * len(NAMES)]).reshape(-1, 3).tolist()


def legend_boxes(picture, photo_height):
    """The colours of the legend's filled boxes, left to right (its first
    row, through the middle of the boxes): coloured runs of pixels, as
    tests/test_guards.py reads the pets' legend."""
    row = np.asarray(picture)[photo_height + 8].astype(int)
    coloured = row.max(-1) - row.min(-1) > 30
    found = []
    for column in np.flatnonzero(coloured):
        if not found or column - found[-1][0] > 1:
            found.append([column, tuple(int(c) for c in row[column])])
        else:
            found[-1][0] = column
    return [list(colour) for _, colour in found]


def test_predict_writes_the_datasets_ids_palette_and_legend(
    own_run, own_data, tmp_path
):
    photo = own_data / "images" / "frame_03.png"
    out = tmp_path / "out"
    assert cli_main(["predict", own_run, str(photo), "--out", str(out)]) == 0
    with Image.open(out / "frame_03_mask.png") as mask:
        assert mask.size == (WIDTH, HEIGHT)
        assert set(np.unique(np.asarray(mask))) <= set(range(len(NAMES)))
    # The colour table round-trips: the palette is dataset.json's colours.
    assert palette_of(out / "frame_03_colour.png") == COLOURS
    with Image.open(out / "frame_03_overlay.png") as overlay:
        overlay = np.asarray(overlay)
    # One legend row below the photo: a filled box per class in the
    # dataset's colours (the pets' would leave class 1 an outline).
    assert overlay.shape[0] == HEIGHT + 16
    assert legend_boxes(overlay, HEIGHT) == COLOURS


def test_an_export_records_the_classes_and_is_used_alone(
    own_run, bare_data, tmp_path, capsys
):
    from tfseg.demo import logic

    alone = tmp_path / "alone"
    alone.mkdir()
    path = alone / "model.tflite"
    flags = ["--format", "tflite", "--out", str(path)]
    assert cli_main(["export", own_run, *flags]) == 0
    sidecar = files.read_json(f"{path}.json")
    recorded = files.read_json(os.path.join(own_run, "config.json"))
    assert sidecar["class_names"] == NAMES
    assert sidecar["colors"] == COLOURS
    assert sidecar["dataset"] == recorded["config"]["description"]
    assert sidecar["dataset"]["ignore"] == [VOID_VALUE]
    assert sidecar["image_size"] == [32, 48]
    assert sidecar["input"]["shape"] == [1, 32, 48, 3]

    # Scored alone on a folder without dataset.json: the classes are the
    # sidecar's (a model without them would be refused: 3 pet classes).
    capsys.readouterr()
    assert cli_main(["evaluate", str(path), "--data-dir", str(bare_data)]) == 0
    assert "reading it with the run's 4 classes (sky, road" in capsys.readouterr().out
    report = files.read_json(f"{path}.metrics.json")
    assert report["class_names"] == NAMES
    assert "IoU car" in (alone / "model.tflite.metrics.md").read_text()

    # Predicted and served alone: the sidecar's colours and names.
    photo = bare_data / "images" / "frame_05.png"
    out = tmp_path / "o"
    assert cli_main(["predict", str(path), str(photo), "--out", str(out)]) == 0
    assert palette_of(tmp_path / "o" / "frame_05_colour.png") == COLOURS
    demo = logic.load_for_demo(str(path))
    assert demo.class_names == tuple(NAMES)
    assert [list(colour) for colour in demo.colors] == COLOURS
    assert demo.details["class_names"] == ", ".join(NAMES)
    assert demo.details["image_size"] == "32x48 px"


def test_int8_calibrates_on_the_runs_own_split_or_a_bare_copy(
    own_run, own_data, bare_data, tmp_path, capsys
):
    recorded = files.read_json(os.path.join(own_run, "config.json"))
    train_images = recorded["examples"]["train"]
    path = tmp_path / "int8.tflite"
    flags = ["--format", "tflite", "--quantize", "int8", "--out", str(path)]
    assert cli_main(["export", own_run, *flags]) == 0
    calibration = files.read_json(f"{path}.json")["calibration"]
    assert calibration["source"] == str(own_data)
    assert calibration["images"] == train_images == len(calibration["names"])

    # Another folder without dataset.json: read with the run's description
    # (its void value 9 is void, not a fifth class), the same training split.
    capsys.readouterr()
    other = tmp_path / "other.tflite"
    flags = ["--format", "tflite", "--quantize", "int8", "--out", str(other)]
    assert cli_main(["export", own_run, *flags, "--data-dir", str(bare_data)]) == 0
    assert "reading it with the run's 4 classes" in capsys.readouterr().out
    moved = files.read_json(f"{other}.json")["calibration"]
    assert moved["source"] == str(bare_data)
    assert moved["names"] == calibration["names"]


def test_the_demo_shows_the_runs_classes_colours_and_size(own_run, own_data):
    from tfseg.demo import logic

    demo = logic.load_for_demo(own_run)
    assert demo.class_names == tuple(NAMES)
    assert [list(colour) for colour in demo.colors] == COLOURS
    assert demo.details["image size"] == "32x48 px"
    # The run's own model.keras (no sidecar) has the run's classes too.
    model_file = logic.load_for_demo(os.path.join(own_run, "model.keras"))
    assert model_file.class_names == tuple(NAMES)
    assert [list(colour) for colour in model_file.colors] == COLOURS
    assert demo.details["classes"] == ", ".join(NAMES)
    # Examples: photos of the run's own test split.
    assert demo.examples and all(os.path.isfile(path) for path in demo.examples)
    assert {os.path.dirname(path) for path in demo.examples} == {
        str(own_data / "images")
    }

    segmentation = logic.segment_photo(demo, str(own_data / "images" / "frame_01.png"))
    table = logic.share_table(segmentation, demo.class_names)
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert rows == NAMES
    painted, mask = logic.render(
        segmentation, demo.class_names, 0.5, demo.colors, demo.unpainted
    )
    assert legend_boxes(painted, HEIGHT) == COLOURS
    assert palette_of(mask) == COLOURS


def test_compare_forwards_the_description_and_names_its_columns(
    own_run, own_data, tmp_path
):
    from tfseg.cli.parser import add_compare_arguments
    from tfseg.compare import running
    from tfseg.compare.measure import measure_speed
    from tfseg.compare.measure import summarize
    from tfseg.compare.report import write_table

    dataset = str(own_data / "dataset.json")
    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    argv = ["--models", "unet", "--data-dir", str(own_data), "--dataset", dataset]
    argv += ["--image-size", TRAIN_SIZE, "--output-dir", str(tmp_path / "cmp")]
    args = parser.parse_args(argv)
    command = running.train_command(running.Entry("unet"), args, str(tmp_path))
    assert command[command.index("--dataset") + 1] == dataset
    assert command[command.index("--image-size") + 1] == TRAIN_SIZE
    # A resumed comparison keeps a (height, width) size as compare.json has it.
    os.makedirs(args.output_dir)
    running.check_settings(args)
    args.resume = True
    running.check_settings(args)

    from tfseg.files import load_model

    model = load_model(os.path.join(own_run, "model.keras"))
    latency, throughput = measure_speed(model, (32, 48), repeats=1)
    assert latency > 0 and throughput > 0
    row = summarize(running.Entry("unet"), own_run, "ok", 100.0, 5.0, (32, 48))
    assert row["status"] == "ok", row["error"]
    write_table([row], str(tmp_path))
    with open(tmp_path / "comparison.csv", newline="") as file:
        header = next(csv.reader(file))
    assert [c for c in header if c.startswith("iou_")] == [f"iou_{n}" for n in NAMES]
    markdown = (tmp_path / "comparison.md").read_text()
    assert "| iou_sky | iou_road | iou_car | iou_tree |" in markdown
    assert "iou_pet" not in markdown
