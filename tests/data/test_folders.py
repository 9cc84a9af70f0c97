"""Dataset folders: layouts, pairing, dataset.json and mask inspection.

Each test writes a tiny dataset (8x12 px images) with PIL in `tmp_path`.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED_DATA
from tfseg.data.dataset import VOID
from tfseg.data.dataset import DataError
from tfseg.data.dataset import DatasetDescription
from tfseg.data.dataset import describe_from_masks
from tfseg.data.dataset import read_dataset_json
from tfseg.data.dataset import write_dataset_json
from tfseg.data.folders import FOLDER_PAIRS
from tfseg.data.folders import Pair
from tfseg.data.folders import find_layout
from tfseg.data.folders import inspect_masks

HEIGHT, WIDTH = 8, 12
COLORS = [(0, 0, 0), (128, 0, 0), (0, 128, 0)]


def write_image(path, size=(WIDTH, HEIGHT)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)


def class_ids(seed, values=(0, 1, 2), dtype=np.uint8):
    """An (8, 12) mask holding every one of `values`."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.array(values), (HEIGHT, WIDTH)).astype(dtype)
    ids.flat[: len(values)] = values
    return ids


def write_mask(path, array, palette=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if palette is not None:
        image.putpalette(palette)  # an "L" image becomes a "P" one
    image.save(path)
    return array


def voc_palette():
    """Pascal VOC's palette: bits of the index spread over r, g and b."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        for shift in range(8):
            red |= (index >> 0 & 1) << (7 - shift)
            green |= (index >> 1 & 1) << (7 - shift)
            blue |= (index >> 2 & 1) << (7 - shift)
            index >>= 3
        palette += [red, green, blue]
    return palette


def pairs_of(folder, names, image_dir="images", mask_dir="masks", mask_name="{}"):
    for number, name in enumerate(names):
        write_image(folder / image_dir / f"{name}.jpg")
        write_mask(
            folder / mask_dir / f"{mask_name.format(name)}.png", class_ids(number)
        )


def names(pairs):
    return [pair.name for pair in pairs]


# -- layouts -----------------------------------------------------------------


@pytest.mark.parametrize(
    "image_dir, mask_dir", [*FOLDER_PAIRS, ("Images", "MASKS"), ("IMG", "Ann")]
)
def test_split_folders_pair_images_and_masks_by_stem(tmp_path, image_dir, mask_dir):
    pairs_of(tmp_path / "train", ["a", "b"], image_dir, mask_dir)
    pairs_of(tmp_path / "val", ["c"], image_dir, mask_dir)
    layout = find_layout(tmp_path)
    assert layout.kind == "split_folders"
    assert {split: names(pairs) for split, pairs in layout.splits.items()} == {
        "train": ["a", "b"],
        "val": ["c"],
    }
    first = layout.splits["train"][0]
    assert first == Pair(
        str(tmp_path / "train" / image_dir / "a.jpg"),
        str(tmp_path / "train" / mask_dir / "a.png"),
        "a",
    )
    assert (
        layout.notes[0]
        == f"paired 2 images in train/{image_dir}/ with train/{mask_dir}/"
    )


def test_segnet_siblings_follow_lists_written_on_another_machine(tmp_path):
    for split, stems in (
        ("train", ["0001TP_1", "0001TP_2", "0001TP_3"]),
        ("val", ["0016E5_1"]),
    ):
        for number, stem in enumerate(stems):
            write_image(tmp_path / split / f"{stem}.png")
            write_mask(tmp_path / f"{split}annot" / f"{stem}.png", class_ids(number))
    # The list leaves 0001TP_3 out and is in another order than the names.
    (tmp_path / "train.txt").write_text(
        "/SegNet/CamVid/train/0001TP_2.png /SegNet/CamVid/trainannot/0001TP_2.png\n"
        "/SegNet/CamVid/train/0001TP_1.png /SegNet/CamVid/trainannot/0001TP_1.png\n"
    )
    layout = find_layout(tmp_path)
    assert layout.kind == "segnet"
    assert names(layout.splits["train"]) == ["0001TP_1", "0001TP_2"]
    assert names(layout.splits["val"]) == ["0016E5_1"]  # no val.txt: the folders
    assert layout.splits["train"][1].mask_path == str(
        tmp_path / "trainannot" / "0001TP_2.png"
    )
    assert layout.notes == (
        "paired 2 images in train/ with trainannot/ (listed in train.txt)",
        "left out 1 image(s) of train/ that train.txt does not list",
        "paired 1 images in val/ with valannot/",
    )


def test_a_listed_file_that_is_absent_names_its_namesake(tmp_path):
    write_image(tmp_path / "train" / "a.png")
    write_image(tmp_path / "train" / "b.jpg")
    for stem in "ab":
        write_mask(tmp_path / "trainannot" / f"{stem}.png", class_ids(0))
    (tmp_path / "train.txt").write_text(
        "/x/train/a.png /x/trainannot/a.png\n/x/train/b.png /x/trainannot/b.png\n"
        "/x/train/c.png /x/trainannot/c.png\n"
    )
    with pytest.raises(DataError) as caught:
        find_layout(tmp_path)
    assert caught.value.problems == {
        "train.txt, line 2": "image b.png is not in train/ (b.jpg is there)",
        "train.txt, line 3": (
            "image c.png is not in train/; mask c.png is not in trainannot/"
        ),
    }


def test_one_images_and_one_masks_folder_give_the_split_all(tmp_path):
    pairs_of(tmp_path, ["x", "y", "z"])
    layout = find_layout(tmp_path)
    assert layout.kind == "single_folder"
    assert {split: names(pairs) for split, pairs in layout.splits.items()} == {
        "all": ["x", "y", "z"]
    }


@pytest.mark.parametrize("suffix", ["_mask", "_label", "_labels", "_gt", "_GT"])
def test_mask_stems_may_carry_a_suffix(tmp_path, suffix):
    pairs_of(tmp_path, ["cell_1", "cell_2"], mask_name="{}" + suffix)
    (pair, _) = find_layout(tmp_path).splits["all"]
    assert pair.name == "cell_1"
    assert pair.mask_path == str(tmp_path / "masks" / f"cell_1{suffix}.png")


def test_the_oxford_pet_layout_is_left_to_its_own_reader(tmp_path):
    pairs_of(tmp_path, ["Abyssinian_1"], "images", "annotations/trimaps")
    layout = find_layout(tmp_path)
    assert (layout.kind, layout.splits) == ("oxford_pet", {})


def test_dataset_json_splits_name_the_folders(tmp_path):
    pairs_of(tmp_path, ["p", "q"], "photos", "labels_png")
    layout = find_layout(
        tmp_path, {"train": {"images": "photos", "masks": "labels_png"}}
    )
    assert layout.kind == "explicit"
    assert names(layout.splits["train"]) == ["p", "q"]


def test_every_unpaired_file_is_named_at_once(tmp_path):
    pairs_of(tmp_path, ["paired"])
    write_image(tmp_path / "images" / "lonely.jpg")
    write_mask(tmp_path / "masks" / "orphan.png", class_ids(0))
    with pytest.raises(DataError) as caught:
        find_layout(tmp_path)
    assert caught.value.problems == {
        "images/lonely.jpg": "image without a mask in masks/",
        "masks/orphan.png": "mask without an image in images/",
    }
    message = str(caught.value)
    assert message.startswith("2 broken example(s):\n  images/lonely.jpg: image")
    assert "paired 1 images in images/ with masks/" in message
    assert "0001_mask.png" in message  # how pairing works


def test_a_long_list_of_unpaired_files_is_cut_with_a_count(tmp_path):
    (tmp_path / "masks").mkdir()
    for number in range(130):  # pairing reads names only: empty files will do
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / f"{number:04d}.jpg").touch()
    with pytest.raises(DataError) as caught:
        find_layout(tmp_path)
    message = str(caught.value)
    assert message.startswith("130 broken example(s):")
    assert "images/0099.jpg" in message and "images/0100.jpg" not in message
    assert "... and 30 more" in message


def test_skip_bad_leaves_unpaired_files_out_and_says_which(tmp_path):
    pairs_of(tmp_path, ["kept"])
    write_image(tmp_path / "images" / "lonely.jpg")
    layout = find_layout(tmp_path, skip_bad=True)
    assert names(layout.splits["all"]) == ["kept"]
    assert layout.problems == {"images/lonely.jpg": "image without a mask in masks/"}


def test_a_jpeg_mask_is_refused_with_the_reason(tmp_path):
    write_image(tmp_path / "images" / "a.jpg")
    write_image(tmp_path / "masks" / "a.jpg")
    with pytest.raises(DataError) as caught:
        find_layout(tmp_path)
    # The image is not listed again: its mask's problem says it all.
    assert list(caught.value.problems) == ["masks/a.jpg"]
    assert (
        "JPEG is lossy, so class values smear" in caught.value.problems["masks/a.jpg"]
    )


def test_a_listed_jpeg_mask_is_refused_too(tmp_path):
    write_image(tmp_path / "train" / "a.png")
    write_image(tmp_path / "trainannot" / "a.jpg")
    (tmp_path / "train.txt").write_text("/x/train/a.png /x/trainannot/a.jpg\n")
    with pytest.raises(DataError) as caught:
        find_layout(tmp_path)
    assert caught.value.problems["train.txt, line 1"].startswith(
        "mask a.jpg is a JPEG mask, refused: JPEG is lossy"
    )


def test_a_second_mask_of_one_image_is_named(tmp_path):
    pairs_of(tmp_path, ["a"])
    write_mask(tmp_path / "masks" / "a_mask.png", class_ids(1))
    layout = find_layout(tmp_path, skip_bad=True)
    assert layout.splits["all"][0].mask_path == str(tmp_path / "masks" / "a.png")
    assert layout.problems == {
        "masks/a_mask.png": "a second mask of image 'a': keep one"
    }


def test_a_folder_of_no_known_layout_says_what_is_expected(tmp_path):
    (tmp_path / "pictures").mkdir()
    with pytest.raises(ValueError, match=r"it holds: pictures\). Expected train/"):
        find_layout(tmp_path)


# -- masks -------------------------------------------------------------------


def counts_of(*arrays):
    values, counts = np.unique(
        np.concatenate([a.ravel() for a in arrays]), return_counts=True
    )
    return dict(zip(values.tolist(), counts.tolist()))


@pytest.mark.parametrize(
    "values, dtype, palette",
    [
        ((0, 1, 2), np.uint8, None),  # class ids
        ((0, 300, 65535), np.uint16, None),  # 16-bit PNG
        ((0, 1, 15, 255), np.uint8, voc_palette()),  # VOC palette PNG
        ((0, 255), np.uint8, None),  # binary
    ],
    ids=["ids", "16bit", "palette", "binary"],
)
def test_inspect_masks_counts_the_values_of_each_file(tmp_path, values, dtype, palette):
    written = [
        write_mask(
            tmp_path / "masks" / f"{n}.png", class_ids(n, values, dtype), palette
        )
        for n in range(2)
    ]
    for n in range(2):
        write_image(tmp_path / "images" / f"{n}.jpg")
    pairs = find_layout(tmp_path).splits["all"]
    inspection = inspect_masks(pairs)
    assert inspection.values == counts_of(*written)
    assert inspection.files[pairs[1].mask_path] == counts_of(written[1])
    assert inspection.problems == {}
    assert (inspection.palette is not None) == (palette is not None)


def test_one_bit_masks_read_as_0_and_255(tmp_path):
    write_image(tmp_path / "images" / "a.jpg")
    (tmp_path / "masks").mkdir()
    bits = class_ids(0, (0, 1)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "masks" / "a.png")
    inspection = inspect_masks(find_layout(tmp_path).splits["all"])
    assert inspection.values == {0: int((~bits).sum()), 255: int(bits.sum())}


def test_describe_from_masks_records_the_values_found():
    binary = describe_from_masks({0: 50, 255: 46})
    assert binary.classes == ("class_0", "class_255")
    assert binary.mask_values == (0, 255)
    assert binary.mask_lookup()[[0, 255, 7]].tolist() == [0, 1, VOID]
    voc = describe_from_masks([0, 1, 15, 255], palette=voc_palette())
    assert voc.classes == ("class_0", "class_1", "class_15")
    assert voc.ignore == (255,)  # VOC's border, beside other values: void
    assert voc.colors == ((0, 0, 0), (128, 0, 0), (192, 128, 128))
    colours = describe_from_masks([(0, 0, 0), (128, 0, 0)])
    assert (colours.masks, colours.classes[1]) == ("rgb", "class_128_0_0")


def test_mask_lookup_maps_values_to_ids_and_void_to_255():
    description = DatasetDescription(["road", "car"], ignore=[7], mask_values=[3, 5])
    table = description.mask_lookup()
    assert table.shape == (256,)
    assert table[[3, 5, 7, 0]].tolist() == [0, 1, VOID, VOID]
    wide = DatasetDescription(["a", "b"], mask_values=[0, 1000]).mask_lookup()
    assert wide.shape == (65536,) and wide[1000] == 1


def test_rgb_masks_read_through_the_colors_table(tmp_path):
    ids = class_ids(0)
    write_image(tmp_path / "images" / "a.jpg")
    write_mask(tmp_path / "masks" / "a.png", np.array(COLORS, np.uint8)[ids])
    description = DatasetDescription(
        ["void", "road", "tree"], colors=COLORS, masks="rgb"
    )
    (pair,) = find_layout(tmp_path).splits["all"]
    inspection = inspect_masks([pair], description)
    assert inspection.problems == {}
    assert inspection.values == {COLORS[i]: int((ids == i).sum()) for i in range(3)}
    rgb = np.asarray(Image.open(pair.mask_path))
    np.testing.assert_array_equal(description.colors_to_ids(rgb, pair.mask_path), ids)


def test_a_colour_not_in_the_table_is_named_with_file_and_count(tmp_path):
    description = DatasetDescription(["void", "road"], colors=COLORS[:2], masks="rgb")
    ids = class_ids(0)  # class 2's colour is not in the table
    rgb = np.array(COLORS, np.uint8)[ids]
    with pytest.raises(DataError) as caught:
        description.colors_to_ids(rgb, "masks/a.png")
    count = int((ids == 2).sum())
    assert caught.value.problems == {
        "masks/a.png": f"{count} px of 1 colour(s) that dataset.json does not "
        f"declare (as a class or in `ignore`): (0, 128, 0) ({count} px)"
    }


def test_rgb_masks_without_colors_are_reported(tmp_path):
    write_image(tmp_path / "images" / "a.jpg")
    write_mask(tmp_path / "masks" / "a.png", np.array(COLORS, np.uint8)[class_ids(0)])
    (pair,) = find_layout(tmp_path).splits["all"]
    problems = inspect_masks([pair], DatasetDescription(["a", "b", "c"])).problems
    assert problems == {
        pair.mask_path: "an RGB colour mask, but dataset.json gives no colour table: "
        'add "masks": "rgb" and "colors" (one [r, g, b] per class)'
    }


def test_a_mask_of_another_size_than_its_image_is_named(tmp_path):
    write_image(tmp_path / "images" / "a.jpg", size=(10, 8))
    write_mask(tmp_path / "masks" / "a.png", class_ids(0))
    (pair,) = find_layout(tmp_path).splits["all"]
    assert inspect_masks([pair]).problems == {
        pair.mask_path: "mask is 12x8 px but its image a.jpg is 10x8 px"
    }


def test_an_undeclared_value_is_named_with_its_file_and_count(tmp_path):
    pairs_of(tmp_path, ["a", "b"])  # values 0, 1 and 2
    pairs = find_layout(tmp_path).splits["all"]
    description = DatasetDescription(["background", "cell"])  # values 0 and 1
    inspection = inspect_masks(pairs, description)
    for number, pair in enumerate(pairs):
        count = int((class_ids(number) == 2).sum())
        assert inspection.problems[pair.mask_path] == (
            f"{count} px of 1 value(s) that dataset.json does not declare (as a "
            f"class or in `ignore`): 2 ({count} px)"
        )
    void = DatasetDescription(["background", "cell"], ignore=[2])
    assert inspect_masks(pairs, void).problems == {}


def test_max_files_reads_evenly_spaced_masks(tmp_path):
    pairs_of(tmp_path, [f"{n}" for n in range(9)])
    pairs = find_layout(tmp_path).splits["all"]
    read = inspect_masks(pairs, max_files=3).files
    assert list(read) == [pairs[n].mask_path for n in (0, 4, 8)]


# -- dataset.json ------------------------------------------------------------


def test_dataset_json_round_trips(tmp_path):
    description = DatasetDescription(
        [f"class_{n}" for n in range(12)],
        ignore=[255],
        mask_values=list(range(12)),
        colors=[(n * 20, 0, 255 - n * 20) for n in range(12)],
        splits={"train": "train.txt", "val": {"images": "v", "masks": "va"}},
    )
    write_dataset_json(tmp_path / "dataset.json", description)
    assert read_dataset_json(tmp_path / "dataset.json") == description
    text = (tmp_path / "dataset.json").read_text()
    assert "    [0, 0, 255],\n    [20, 0, 235]," in text  # one colour a line
    assert json.loads(text)["ignore"] == [255]


@pytest.mark.parametrize(
    "content, words",
    [
        ('{\n  "classes": ["a", "b"],\n  "ignore": [11,]\n}', "line 3, column 17"),
        (
            {"classes": ["a"], "colours": [[1, 2, 3]]},
            "unknown key(s) 'colours' (did you mean 'colors'?); the known keys are "
            "classes, ignore, mask_values, colors, masks, splits.",
        ),
        ({"ignore": [0]}, "`classes` is missing"),
        ({"classes": "road"}, 'received "road"'),
        (
            {"classes": ["a", "b"], "colors": [[0, 0, 0]]},
            "`colors` has 1 entries for 2 classes; expected one per class",
        ),
        (
            {"classes": ["a", "b"], "mask_values": [0, 1, 2]},
            "`mask_values` has 3 entries for 2 classes",
        ),
        (
            {"classes": ["a", "b"], "ignore": [1]},
            "`ignore` value 1 is also the mask value of class 'b'",
        ),
        ({"classes": ["a"], "masks": "rgb"}, '"masks": "rgb"` masks are read through'),
        (
            {"classes": ["a", "b"], "colors": [[9, 9, 9], [9, 9, 9]]},
            "`colors` gives [9, 9, 9] to both 'a' and 'b'; each class needs its own",
        ),
        (
            {"classes": ["a"], "colors": [[0, 0, 256]]},
            "`colors` must be a list of [r, g, b] colours, 0..255 each; received "
            "[0, 0, 256]",
        ),
        ({"classes": ["a"], "masks": "gray"}, "`masks` must be one of ['ids', 'rgb']"),
        ({"classes": ["a"], "splits": {"dev": "dev.txt"}}, "splits among ['train'"),
    ],
    ids=[
        "syntax", "unknown-key", "no-classes", "classes-type", "colors-count",
        "mask-values-count", "ignore-is-a-class", "rgb-without-colors",
        "duplicate-colours", "colour-range", "masks-kind", "split-name",
    ],
)  # fmt: skip
def test_dataset_json_errors_say_what_is_wrong_in_one_line(tmp_path, content, words):
    path = tmp_path / "dataset.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError) as caught:
        read_dataset_json(path)
    message = str(caught.value)
    assert message.startswith(f"{path}")
    assert words in message
    assert "\n" not in message


# -- the package -------------------------------------------------------------


def test_the_folder_modules_do_not_import_tensorflow():
    code = (
        "import sys, tfseg.data.folders, tfseg.data.dataset; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_camvid_from_segnet(tmp_path):
    root = SHARED_DATA / "camvid"
    if not root.is_dir():
        pytest.skip(f"CamVid not found at {root}")
    layout = find_layout(root)
    assert layout.kind == "segnet"
    assert {split: len(pairs) for split, pairs in layout.splits.items()} == {
        "train": 367,
        "val": 101,
    }
    inspection = inspect_masks(layout.splits["train"] + layout.splits["val"])
    assert inspection.problems == {}
    assert sorted(inspection.values) == list(range(12))  # 11 classes, void 11
