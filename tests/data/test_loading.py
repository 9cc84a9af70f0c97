"""`tfseg.data.loading`: a run's splits and batches from its config."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.data.palette import palette_examples
from tfseg.config import TrainConfig
from tfseg.data import ArrayBatches
from tfseg.data import export_npz
from tfseg.data import loading
from tfseg.data import pipeline
from tfseg.data import write_synthetic_pets


@pytest.fixture(scope="module")
def test_only_folder(tmp_path_factory):
    """What `evaluate --data-dir` may get: test pairs and test.txt, nothing else."""
    root = tmp_path_factory.mktemp("test_only")
    write_synthetic_pets(root, num_images=6, test_fraction=1.0, seed=4)
    os.remove(root / "annotations" / "trainval.txt")
    return root


def test_only_the_requested_splits_are_decoded(test_only_folder, monkeypatch):
    decoded = []
    decode_records = pipeline.decode_records

    def spy(records, *args, **kwargs):
        decoded.append({record.name for record in records})
        return decode_records(records, *args, **kwargs)

    monkeypatch.setattr(pipeline, "decode_records", spy)
    config = TrainConfig(data_dir=str(test_only_folder), image_size=32)
    splits = loading.load_splits(config, ["test"], progress=False)
    assert list(splits) == ["test"]
    assert len(decoded) == 1 and len(decoded[0]) == len(splits["test"]) == 6
    # The test split keeps each mask at the image's own resolution.
    originals = splits["test"].original_masks
    assert len(originals) == 6 and originals[0].shape != (32, 32, 1)
    # The folder holds no training images: asking for them is what fails.
    with pytest.raises(ValueError, match="'train' split of .* is empty"):
        loading.load_splits(config, ["train"], progress=False)


def test_progress_shows_each_split_and_every_skipped_file(tmp_path, capsys):
    copy = tmp_path / "pets"
    write_synthetic_pets(copy, num_images=8, seed=3)
    (copy / "images" / "Bengal_3.jpg").write_text("not a picture")
    os.remove(copy / "annotations" / "trimaps" / "beagle_4.png")
    config = TrainConfig(
        data_dir=str(copy), image_size=32, val_fraction=0.0, skip_bad=True
    )
    splits = loading.load_splits(config, ["train", "test"])
    output = capsys.readouterr().out
    assert "decoding train: " in output and "decoding test: " in output
    assert "skipped Bengal_3: image " in output and "cannot be decoded" in output
    assert "skipped beagle_4: trimap file " in output
    assert sum(len(s) for s in splits.values()) == 6
    loading.load_splits(config, ["train", "test"], progress=False)
    assert capsys.readouterr().out == ""


def test_synthetic_pets_are_written_once_and_reused(tmp_path, monkeypatch):
    config = TrainConfig(synthetic=6, image_size=32, output_dir=str(tmp_path))
    first = loading.load_splits(config, ["test"], progress=False)
    assert sorted(os.listdir(tmp_path)) == [".synthetic_6_0"]  # no scratch left

    def written_again(*args, **kwargs):
        raise AssertionError("the synthetic pets were written twice")

    monkeypatch.setattr(loading, "write_synthetic_pets", written_again)
    again = loading.load_splits(config, ["test"], progress=False)
    np.testing.assert_array_equal(again["test"].images, first["test"].images)


def test_npz_exports_need_only_the_requested_files(tmp_path):
    export_npz(palette_examples(5, size=32), tmp_path / "pets_test.npz")
    config = TrainConfig(data_npz=str(tmp_path / "pets.npz"), image_size=32)
    splits = loading.load_splits(config, ["test"])
    assert list(splits) == ["test"] and len(splits["test"]) == 5
    message = r"no .*pets_train\.npz.* \(looked for .*\)\. Pass the --out path"
    with pytest.raises(ValueError, match=message):
        loading.load_splits(config)


def batches_of(config, count, **kwargs):
    return loading.make_batches(config, palette_examples(count, size=16), **kwargs)


@pytest.mark.parametrize(
    "settings, replicas, fix",
    [
        (
            {},
            1,
            "Lower --batch-size to 3 or less, or use more data (a folder with "
            "more training images).",
        ),
        (
            {"val_fraction": 0.0},
            2,
            "Lower --batch-size to 2 or less (a multiple of the 2 replicas), or "
            "use more data (a folder with more training images).",
        ),
        (
            {"max_examples": 3},
            1,
            "Lower --batch-size to 3 or less, or raise --max-examples (now 3).",
        ),
        (
            {"synthetic": 6},
            1,
            "Lower --batch-size to 3 or less, or use more data (a --synthetic "
            "larger than 6).",
        ),
    ],
)
def test_a_training_split_smaller_than_a_batch_names_the_fix(settings, replicas, fix):
    config = TrainConfig(batch_size=16, **settings)
    with pytest.raises(ValueError) as error:
        batches_of(config, 3, training=True, replicas=replicas)
    assert str(error.value) == (
        "The training split holds 3 example(s), fewer than one batch of 16: "
        f"zero training steps. {fix}"
    )


def test_validation_batches_or_none_when_too_small():
    config = TrainConfig(batch_size=4)
    assert loading.make_batches(config, None, training=False) is None
    assert batches_of(config, 3, training=False, replicas=2) is None  # < a batch
    served = list(batches_of(config, 6, training=False))
    assert [len(images) for images, _ in served] == [4, 2]  # in order, all kept
    whole = list(batches_of(config, 6, training=False, replicas=2))
    assert [len(images) for images, _ in whole] == [4]


def test_the_backend_chooses_the_batcher(monkeypatch):
    config = TrainConfig(batch_size=4, data_npz="pets.npz", class_weights=(1, 2, 3))
    served = batches_of(config, 8, training=True)
    assert isinstance(served, tf.data.Dataset)  # TensorFlow backend: tf.data
    images, masks, weights = next(iter(served))
    expected = np.float32([1, 2, 3])[masks.numpy()[..., 0]]
    np.testing.assert_array_equal(weights.numpy(), expected)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    served = batches_of(config, 8, training=True, initial_epoch=3)
    assert isinstance(served, ArrayBatches) and served.epoch == 3
    # Images never come from .npz files: they always go through tf.data.
    images_config = TrainConfig(batch_size=4, data_dir="pets")
    assert isinstance(batches_of(images_config, 8, training=True), tf.data.Dataset)
