"""`--crop HxW`: training on random windows of the images at `--image-size`,
the model saved at `--image-size` to score."""

import os

import keras
import numpy as np
import pytest

from tests.data.palette import mask_from_image
from tests.data.palette import palette_examples
from tests.data.test_sizing import write_pairs
from tfseg import data
from tfseg.cli import main
from tfseg.config import TrainConfig
from tfseg.data.loading import make_batches
from tfseg.data.sizing import with_automatic_size
from tfseg.train.recipe import images_to_score

WINDOW = (24, 32)


def window_offsets(images, windows):
    """`(top, left)` of each window in its image, where it is one exactly."""
    found = []
    for image, window in zip(images, windows):
        height, width = window.shape[:2]
        spots = [
            (top, left)
            for top in range(image.shape[0] - height + 1)
            for left in range(image.shape[1] - width + 1)
            if np.array_equal(image[top : top + height, left : left + width], window)
        ]
        found.append(spots[0] if spots else None)
    return found


def crop_only_batch(examples, seed=0):
    """The first training batch of `examples` cut into `WINDOW`s, seeded."""
    config = TrainConfig(crop=WINDOW, augment=False, batch_size=8, seed=seed)
    images, masks = next(iter(make_batches(config, examples, training=True)))
    return images.numpy(), masks.numpy()


def test_crop_without_augmentation_cuts_windows_pixel_for_pixel():
    # A random image: any resampling, shift or flip would show.
    examples = palette_examples(8)
    rng = np.random.default_rng(0)
    examples.images = rng.integers(0, 256, examples.images.shape, dtype=np.uint8)
    images, masks = crop_only_batch(examples)
    assert images.shape == (8, *WINDOW, 3) and masks.shape == (8, *WINDOW, 1)
    # Which example each window came from: the batch is shuffled.
    sources = examples.images[:, None]
    offsets = []
    for image, mask in zip(images.astype(np.uint8), masks):
        for index, source in enumerate(sources[:, 0]):
            (spot,) = window_offsets([source], [image])
            if spot is not None:
                top, left = spot
                window = examples.masks[index, top : top + WINDOW[0]]
                np.testing.assert_array_equal(mask, window[:, left : left + WINDOW[1]])
                offsets.append(spot)
                break
        else:
            pytest.fail("a training window is not a window of any image")
    # Random windows, not the centre each time.
    assert len(set(offsets)) >= 4, offsets


def test_windows_move_each_epoch_and_repeat_with_the_seed():
    examples = palette_examples(8)
    first, _ = crop_only_batch(examples, seed=3)
    again, _ = crop_only_batch(examples, seed=3)
    other, _ = crop_only_batch(examples, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("on_arrays", [False, True])
def test_augmented_windows_keep_masks_with_images(on_arrays):
    examples = palette_examples(16)
    augmentation = data.Augmentation(
        brightness=0.0, contrast=0.0, saturation=0.0, rotation=15, crop=WINDOW
    )
    if on_arrays:  # the .npz path's NumPy way
        images, masks = augmentation.on_arrays(examples.images, examples.masks, 0)
    else:
        batches = data.make_dataset(
            examples, 16, training=True, augmentation=augmentation
        )
        images, masks = (part.numpy() for part in next(iter(batches)))
    assert images.shape == (16, *WINDOW, 3) and masks.shape == (16, *WINDOW, 1)
    agreement = (mask_from_image(images) == masks[..., 0]).mean()
    assert agreement > 0.95, agreement


def test_validation_scores_the_central_window():
    examples = palette_examples(4, size=48)
    config = TrainConfig(crop=WINDOW, batch_size=4)
    images, masks = next(iter(make_batches(config, examples, training=False)))
    top, left = (48 - WINDOW[0]) // 2, (48 - WINDOW[1]) // 2
    window = np.s_[:, top : top + WINDOW[0], left : left + WINDOW[1]]
    np.testing.assert_array_equal(images.numpy(), examples.images[window])
    np.testing.assert_array_equal(masks.numpy(), examples.masks[window])


def test_the_budget_counts_test_images_by_their_pixels():
    splits = {"train": list(range(10)), "val": [0, 0], "test": [0] * 5}
    config = TrainConfig(image_size=64, crop=32)
    assert images_to_score(config, splits) == {"train": 10, "val": 2, "test": 20}
    assert images_to_score(TrainConfig(image_size=64), splits)["test"] == 5


def test_a_described_folder_with_crop_keeps_its_frames_full_size(tmp_path):
    write_pairs(tmp_path / "data", [(360, 480)] * 4)
    described = TrainConfig(
        data_dir=str(tmp_path / "data"), description={"classes": ["a", "b"]}
    )
    said = []
    cropped = with_automatic_size(
        TrainConfig(**{**described.__dict__, "crop": (224, 320)}), said.append
    )
    assert cropped.image_size == (352, 480)
    assert "224x320" in said[0]
    assert with_automatic_size(described, said.append).image_size == (224, 320)


def test_frames_over_the_longest_side_give_windows_of_their_full_shape(tmp_path):
    described = {"description": {"classes": ["a", "b"]}}

    def sized(name, shapes):
        write_pairs(tmp_path / name, shapes)
        config = TrainConfig(data_dir=str(tmp_path / name), **described)
        said = []
        config = with_automatic_size(config, said.append, windows=True)
        return config.image_size, config.crop, said[0]

    # CamVid's frames: kept at 352x480, windows of the 224x320 they would
    # have been scaled down to.
    size, crop, said = sized("camvid", [(360, 480)] * 4)
    assert (size, crop) == ((352, 480), (224, 320))
    assert "random 224x320 windows" in said and "--crop none" in said
    assert said.count("(") == said.count(")") == 1, said
    # Frames no longer than 320 px are trained on whole.
    assert sized("small", [(200, 260)] * 4)[:2] == ((192, 256), None)
    # Large tiles are scaled down to 640 px long first.
    assert sized("tiles", [(1500, 2000)] * 2)[:2] == ((480, 640), (224, 320))


TINY_UNET = ["--model", "unet", "--encoder-weights", "none"]
TINY_UNET += ["--model-arg", "depth=2", "--model-arg", "base_filters=4"]


def test_a_cropped_run_trains_on_windows_and_is_scored_at_its_image_size(tmp_path):
    flags = ["--synthetic", "24", "--image-size", "48x64", "--crop", "32"]
    flags += ["--batch-size", "4", "--epochs", "2", *TINY_UNET]
    flags += ["--output-dir", str(tmp_path), "--run-name", "crop"]
    assert main(["train", *flags]) == 0
    run_dir = tmp_path / "crop"
    last = keras.models.load_model(run_dir / "last.keras", compile=False)
    best = keras.models.load_model(run_dir / "best.keras", compile=False)
    final = keras.models.load_model(run_dir / "model.keras", compile=False)
    assert last.input_shape == (None, 32, 32, 3)
    assert final.input_shape == (None, 48, 64, 3)
    # The same network and weights, on the larger input.
    for ours, theirs in zip(final.get_weights(), best.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    report = data_report(run_dir)
    assert report["images"] == 12
    # Evaluate scores the run again at 48x64, as the report did.
    assert main(["evaluate", str(run_dir), "--out", str(tmp_path / "again.json")]) == 0
    again = data_report(tmp_path, "again.json")
    assert again["training_resolution"]["mean_iou"] == pytest.approx(
        report["training_resolution"]["mean_iou"], abs=1e-6
    )


def test_a_described_folder_takes_a_window_larger_than_the_pets_size(tmp_path):
    # No --image-size: the size is the frames' (192x256 here), found after
    # the flags are checked; a 160 px window is larger than the pets' 128.
    write_pairs(tmp_path / "data", [(200, 260)] * 10)
    (tmp_path / "data" / "dataset.json").write_text('{"classes": ["a", "b"]}')
    flags = ["--data-dir", str(tmp_path / "data"), "--crop", "160", *TINY_UNET]
    flags += ["--epochs", "1", "--batch-size", "2", "--output-dir", str(tmp_path)]
    assert main(["train", *flags, "--run-name", "big"]) == 0
    final = keras.models.load_model(tmp_path / "big" / "model.keras", compile=False)
    assert final.input_shape == (None, 192, 256, 3)


def data_report(folder, name="metrics.json"):
    from tfseg.files import read_json

    return read_json(os.path.join(folder, name))


@pytest.mark.parametrize(
    "flags, expected",
    [
        (
            ["--image-size", "48", "--crop", "64", *TINY_UNET],
            "--crop 64 is a window of the training images, which are 48 "
            "(--image-size): it does not fit.",
        ),
        (
            ["--image-size", "64", "--crop", "42", *TINY_UNET],
            "--crop 42: unet (unet encoder) needs sides divisible by 4 (2**depth): "
            "pass --crop 40 or 44.",
        ),
        (
            ["--image-size", "66", "--crop", "32", *TINY_UNET],
            "needs sides that are multiples of 4: pass --image-size 64 or 68",
        ),
        (["--image-size", "64", "--crop", "16", *TINY_UNET], "at least 32"),
        (
            ["--image-size", "64", "--crop", "44", *TINY_UNET]
            + ["--model-arg", 'padding="valid"'],
            "needs a model whose output is its input's size; unet here outputs 4 "
            "for 44",
        ),
        (
            ["--image-size", "44", *TINY_UNET, "--model-arg", 'padding="valid"'],
            "needs a model whose output is its input's size; unet here outputs 4 "
            "for 44",
        ),
    ],
)
def test_crops_that_cannot_work_are_refused_with_the_fix(
    tmp_path, capsys, flags, expected
):
    out = tmp_path / "runs"
    flags = ["--synthetic", "8", "--batch-size", "2", "--output-dir", str(out), *flags]
    code = main(["train", *flags])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert expected in error and len(error.splitlines()) == 1, error
    assert not out.exists() or not os.listdir(out)


@pytest.mark.parametrize(
    "flags, size, crop",
    [
        ([], (352, 480), (224, 320)),  # frames longer than 320 px: windows
        (["--crop", "none"], (224, 320), None),  # whole frames, scaled down
        (["--crop", "96"], (352, 480), 96),
        (["--image-size", "224x320"], (224, 320), None),
        (["--model", "unet", "--model-arg", 'padding="valid"'], (224, 320), None),
        (["--model", "pix2pix"], (224, 320), None),
        (["--recipe", "tutorial"], (224, 320), None),
    ],
)
def test_a_described_folder_trains_on_windows_unless_told_otherwise(
    tmp_path, flags, size, crop
):
    from tfseg.cli.commands import train_config
    from tfseg.cli.parser import build_parser
    from tfseg.train.start import start_run

    write_pairs(tmp_path / "data", [(360, 480)] * 4)
    (tmp_path / "data" / "dataset.json").write_text('{"classes": ["a", "b"]}')
    args = build_parser().parse_args(
        ["train", "--data-dir", str(tmp_path / "data"), *flags]
    )
    config, given = train_config(args)
    started = start_run(config, given, "stamp").config
    assert (started.image_size, started.crop) == (size, crop)


def test_default_windows_train_at_their_size_and_save_at_the_frames(tmp_path):
    # 200x400 frames: kept at 192x384, windows of the 160x320 they would
    # have been scaled down to; the model is saved at the frames' size.
    write_pairs(tmp_path / "data", [(200, 400)] * 8)
    (tmp_path / "data" / "dataset.json").write_text('{"classes": ["a", "b"]}')
    flags = ["--data-dir", str(tmp_path / "data"), *TINY_UNET, "--epochs", "1"]
    flags += ["--batch-size", "2", "--output-dir", str(tmp_path), "--run-name", "w"]
    assert main(["train", *flags]) == 0
    last = keras.models.load_model(tmp_path / "w" / "last.keras", compile=False)
    final = keras.models.load_model(tmp_path / "w" / "model.keras", compile=False)
    assert last.input_shape == (None, 160, 320, 3)
    assert final.input_shape == (None, 192, 384, 3)


def test_a_window_that_is_not_a_size_names_the_forms_it_takes(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--crop", "banana"])
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(
        "--crop: a window is a side (224), HEIGHTxWIDTH (224x320) or none "
        "(whole images); received 'banana'"
    ), last


def test_a_window_larger_than_the_found_frames_says_where_their_size_came_from(
    tmp_path, capsys
):
    write_pairs(tmp_path / "data", [(200, 260)] * 4)
    (tmp_path / "data" / "dataset.json").write_text('{"classes": ["a", "b"]}')
    flags = ["--data-dir", str(tmp_path / "data"), "--crop", "224x320", *TINY_UNET]
    assert main(["train", *flags, "--output-dir", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err.strip()
    assert "which are 192x256 (their shape in the folder): it does not fit" in error
    assert not (tmp_path / "runs").exists()
