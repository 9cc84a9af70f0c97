"""The tf.data pipeline on synthetic, real and broken files."""

import io
import os
import shutil
import stat

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.data.palette import palette_examples
from tfseg import data
from tfseg.cli import main as cli_main
from tfseg.data import OxfordPetFolder
from tfseg.data.decoding import decode_image
from tfseg.data.layout import Record
from tfseg.data.verify import verify_folder


def load_split(root, split="train", **kwargs):
    records = OxfordPetFolder(root).splits(val_fraction=0.2)[0][split]
    return data.load_examples(records, **kwargs)


@pytest.mark.parametrize("size", [64, 97])
def test_examples_have_the_contract_shapes_and_classes(synthetic_root, size):
    examples = load_split(synthetic_root, image_size=size)
    count = len(examples)
    assert examples.images.shape == (count, size, size, 3)
    assert examples.images.dtype == np.uint8
    assert examples.masks.shape == (count, size, size, 1)
    assert examples.masks.dtype == np.uint8
    # Nearest neighbour keeps exactly the trimap classes, at any scale.
    assert set(np.unique(examples.masks)) == {0, 1, 2}
    assert examples.names.shape == (count,)
    assert set(examples.species) == {0, 1}


def test_binary_masks_merge_border_into_pet(synthetic_root):
    three = load_split(synthetic_root, image_size=64)
    binary = load_split(synthetic_root, image_size=64, binary=True)
    assert set(np.unique(binary.masks)) == {0, 1}
    np.testing.assert_array_equal(binary.masks == 1, three.masks == 1)


@pytest.mark.parametrize("mode", ["stretch", "crop", "pad"])
def test_resize_modes(synthetic_root, mode):
    examples = load_split(synthetic_root, image_size=48, resize_mode=mode)
    assert examples.images.shape[1:] == (48, 48, 3)
    if mode == "pad":
        # Every synthetic image is non-square: some rows or columns are padding,
        # labelled background.
        corners = examples.masks[:, [0, -1]][:, :, [0, -1]]
        assert (corners == 1).all()


def test_original_masks_are_kept_at_full_resolution(synthetic_root):
    examples = load_split(
        synthetic_root, "test", image_size=32, keep_original_mask=True
    )
    for name, original in zip(examples.names, examples.original_masks):
        trimap = np.asarray(
            Image.open(synthetic_root / f"annotations/trimaps/{name}.png")
        )
        np.testing.assert_array_equal(original[..., 0], trimap - 1)


def test_jpeg_downscaled_decoding_matches_full_decoding(shared_data):
    path = shared_data / "oxford_iiit_pet/images/Abyssinian_1.jpg"
    contents = tf.io.read_file(str(path))
    fast, size = decode_image(contents, min_side=64)
    full, _ = decode_image(contents)
    assert fast.shape[0] < full.shape[0] and tuple(size.numpy()) == full.shape[:2]
    resize = lambda image: tf.image.resize(image, [64, 64], antialias=True)  # noqa: E731
    difference = np.abs(resize(fast).numpy() - resize(full).numpy()).mean()
    assert difference < 3.0


def encode(array, fmt, mode=None):
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "fmt, mode",
    [
        ("JPEG", "CMYK"),
        ("JPEG", "L"),
        ("PNG", "RGBA"),
        ("PNG", "P"),
        ("GIF", None),
        ("BMP", None),
        ("PNG", "I;16"),
    ],
)
def test_every_image_kind_decodes_to_rgb(fmt, mode):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3)).astype(np.uint8)
    image, size = decode_image(tf.constant(encode(rgb, fmt, mode)))
    assert image.shape == (20, 30, 3) and image.dtype == tf.uint8
    assert tuple(size.numpy()) == (20, 30)


def test_the_quirky_real_files_decode(shared_data):
    root = shared_data / "oxford_iiit_pet"
    records = [
        Record(
            name,
            str(root / f"images/{name}.jpg"),
            str(root / f"annotations/trimaps/{name}.png"),
        )
        for name in ("Abyssinian_5", "Abyssinian_34", "Abyssinian_1")
    ]
    # Abyssinian_5.jpg is an RGBA PNG, Abyssinian_34.jpg a GIF.
    with (
        open(records[0].image_path, "rb") as png,
        open(records[1].image_path, "rb") as gif,
    ):
        assert png.read(4) == b"\x89PNG" and gif.read(3) == b"GIF"
    examples = data.load_examples(records, image_size=64)
    assert list(examples.names) == ["Abyssinian_5", "Abyssinian_34", "Abyssinian_1"]
    assert set(np.unique(examples.masks)) <= {0, 1, 2}
    assert examples.images.std() > 10  # real pictures, not blank fallbacks


def test_real_sample_splits_load(shared_data):
    splits = data.load_oxford_pet(shared_data / "oxford_iiit_pet", 64, max_examples=40)
    assert {len(v) for v in splits.values()} <= {40}
    assert len(splits["train"]) == len(splits["test"]) == 40


# Broken inputs: (what to break, expected message)
def break_missing_image(root):
    os.remove(root / "images/Bengal_3.jpg")


def break_truncated_image(root):
    path = root / "images/Bengal_3.jpg"
    path.write_bytes(path.read_bytes()[:300])


def break_not_an_image(root):
    (root / "images/Bengal_3.jpg").write_text("this is not a picture")


def break_trimap_size(root):
    path = root / "annotations/trimaps/Bengal_3.png"
    trimap = np.asarray(Image.open(path))
    Image.fromarray(trimap[:-5]).save(path)


def break_trimap_values(root):
    path = root / "annotations/trimaps/Bengal_3.png"
    trimap = np.asarray(Image.open(path)).copy()
    trimap[:4, :4] = 7
    Image.fromarray(trimap).save(path)


BROKEN = [
    (break_missing_image, "Bengal_3: image file .*Bengal_3.jpg' is missing"),
    (break_truncated_image, "Bengal_3: image .*Bengal_3.jpg' cannot be decoded"),
    (break_not_an_image, "Bengal_3: image .*Bengal_3.jpg' cannot be decoded"),
    (break_trimap_size, "Bengal_3: trimap size differs from the image size"),
    (break_trimap_values, "Bengal_3: trimap has values outside \\{1, 2, 3\\}"),
]


@pytest.fixture
def broken_copy(synthetic_root, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(synthetic_root, copy)
    return copy


def all_splits(root, **kwargs):
    return data.load_oxford_pet(
        root, 32, val_fraction=0.0, splits=["train", "test"], **kwargs
    )


@pytest.mark.parametrize(
    "breaker, message", BROKEN, ids=[b[0].__name__ for b in BROKEN]
)
def test_bad_input_is_named_or_skipped(broken_copy, breaker, message):
    clean = all_splits(broken_copy)
    total = sum(len(v) for v in clean.values())
    breaker(broken_copy)
    with pytest.raises(data.DataError, match=message):
        all_splits(broken_copy)
    skipped = all_splits(broken_copy, skip_bad=True)
    assert sum(len(v) for v in skipped.values()) == total - 1
    reported = {name for v in skipped.values() for name in v.skipped}
    assert reported == {"Bengal_3"}


def split_lists(root):
    """`{"trainval": [names], "test": [names]}` from the split lists."""
    lists = {}
    for split in ("trainval", "test"):
        with open(root / "annotations" / f"{split}.txt") as lines:
            lists[split] = [line.split()[0] for line in lines]
    return lists


def test_every_problem_of_every_split_comes_in_one_report(broken_copy):
    clean = all_splits(broken_copy)
    total = sum(len(v) for v in clean.values())
    lists = split_lists(broken_copy)
    # Three kinds of trouble in each split, found by different checks: a
    # missing file (the lists), an undecodable file (the decoders) and a
    # bad trimap (the checks in the graph).
    broken = {}
    for split, kinds in (
        ("trainval", ["image", "truncated", "trimap size"]),
        ("test", ["trimap", "not an image", "trimap values"]),
    ):
        for name, kind in zip(lists[split], kinds):
            image = broken_copy / f"images/{name}.jpg"
            trimap = broken_copy / f"annotations/trimaps/{name}.png"
            if kind in ("image", "trimap"):
                os.remove(image if kind == "image" else trimap)
            elif kind == "truncated":
                image.write_bytes(image.read_bytes()[:300])
            elif kind == "not an image":
                image.write_text("this is not a picture")
            else:
                values = np.asarray(Image.open(trimap)).copy()
                values[:4, :4] = 7
                Image.fromarray(values[:-5] if kind == "trimap size" else values).save(
                    trimap
                )
            broken[name] = kind
    with pytest.raises(data.DataError) as error:
        all_splits(broken_copy)
    assert set(error.value.problems) == set(broken)
    message = str(error.value)
    assert message.startswith("6 broken example(s):")
    for name in broken:
        assert f"  {name}: " in message
    skipped = all_splits(broken_copy, skip_bad=True)
    assert sum(len(v) for v in skipped.values()) == total - 6
    assert set(skipped["train"].skipped) == set(lists["trainval"][:3])
    assert set(skipped["test"].skipped) == set(lists["test"][:3])
    for examples in skipped.values():
        assert not set(examples.names) & set(broken)


@pytest.mark.parametrize("breaker", [b[0] for b in BROKEN], ids=lambda b: b.__name__)
def test_verify_folder_reports_each_broken_file(broken_copy, breaker):
    out = io.StringIO()
    assert verify_folder(broken_copy, out) == 0
    assert "checking pairs: 24/24 done in" in out.getvalue()
    breaker(broken_copy)
    out = io.StringIO()
    assert verify_folder(broken_copy, out) == 1
    report = out.getvalue()
    assert "BROKEN Bengal_3" in report
    assert report.rstrip().endswith(": 1 problem(s).")


def test_verify_folder_on_the_real_sample_finds_nothing(shared_data):
    out = io.StringIO()
    assert verify_folder(shared_data / "oxford_iiit_pet", out) == 0
    assert "521 image/trimap pairs checked" in out.getvalue()


def test_empty_split_and_bad_settings_are_explained(synthetic_root):
    with pytest.raises(ValueError, match="The split is empty"):
        data.load_examples([])
    with pytest.raises(ValueError, match="`resize_mode` must be one of"):
        load_split(synthetic_root, resize_mode="squash")
    with pytest.raises(ValueError, match="`resize_mode` must be one of"):
        data.load_oxford_pet(synthetic_root, resize_mode="squash")
    with pytest.raises(ValueError, match="Unknown split"):
        data.load_oxford_pet(synthetic_root, splits=["training"])


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_exported_files_get_the_users_umask(tmp_path, umask, mode):
    examples = palette_examples(4)
    previous = os.umask(umask)
    try:
        data.export_npz(examples, tmp_path / "out" / "pets.npz")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "pets.npz").st_mode) == mode
    assert os.listdir(tmp_path / "out") == ["pets.npz"]  # no temporary left


def test_npz_export_round_trip_and_file_cache(synthetic_root, tmp_path):
    examples = load_split(synthetic_root, image_size=32)
    data.export_npz(examples, tmp_path / "train.npz")
    loaded = data.load_npz(tmp_path / "train.npz")
    for field in ("images", "masks", "names", "breed_ids", "species"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(examples, field))
    cached = load_split(synthetic_root, image_size=32, cache_dir=tmp_path / "cache")
    (cache_file,) = (tmp_path / "cache").iterdir()
    again = load_split(synthetic_root, image_size=32, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.images, cached.images)
    np.testing.assert_array_equal(again.names, examples.names)
    assert cache_file.suffix == ".npz"


def test_export_data_command_writes_one_file_per_split(synthetic_root, tmp_path):
    out = tmp_path / "pets.npz"
    code = cli_main(
        [
            "export-data",
            "--data-dir",
            str(synthetic_root),
            "--image-size",
            "32",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    sizes = {
        split: len(data.load_npz(tmp_path / f"pets_{split}.npz"))
        for split in ("train", "val", "test")
    }
    assert sum(sizes.values()) == 24 and min(sizes.values()) > 0
