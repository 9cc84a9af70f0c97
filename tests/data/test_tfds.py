"""The TensorFlow Datasets source, through the real `tfds.load` code path."""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tfseg import data
from tfseg.data.layout import BREEDS
from tfseg.data.synthetic import synthetic_pet

SPLIT_SIZES = {"train": 20, "test": 8}


def encoded(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def fake_as_dataset(self, split, decoders=None, **kwargs):
    """Stands in for the prepared TFDS files: what `_as_dataset` would read.

    The image and mask stay encoded, as tfseg asks TFDS to skip decoding.
    """
    assert set(decoders) == {"image", "segmentation_mask"}
    rng = np.random.default_rng(len(str(split)))
    examples = []
    for index in range(SPLIT_SIZES[str(split)]):
        image, trimap = synthetic_pet(rng, 60 + index, 80)
        breed = (0, 5, 1, 4)[index % 4]
        examples.append(
            {
                "image": encoded(image, "JPEG"),
                "segmentation_mask": encoded(trimap, "PNG"),
                "label": breed,
                "species": 0 if BREEDS[breed][0].isupper() else 1,
                "file_name": f"{BREEDS[breed]}_{index + 1}.jpg",
            }
        )
    columns = {key: [e[key] for e in examples] for key in examples[0]}
    return tf.data.Dataset.from_tensor_slices(columns)


def test_tfds_source_gives_the_same_examples_as_the_folder_source(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=fake_as_dataset, data_dir=str(tmp_path)):
        splits = data.load_oxford_pet(
            None, 32, val_fraction=0.25, seed=0, tfds_data_dir=str(tmp_path)
        )
    assert len(splits["train"]) + len(splits["val"]) == SPLIT_SIZES["train"]
    assert len(splits["test"]) == SPLIT_SIZES["test"]
    assert not set(splits["train"].names) & set(splits["val"].names)
    # One validation image per breed: stratified by the TFDS label.
    assert sorted(splits["val"].breed_ids) == [0, 1, 4, 5]
    for examples in splits.values():
        assert examples.images.shape[1:] == (32, 32, 3)
        assert examples.masks.shape[1:] == (32, 32, 1)
        assert set(np.unique(examples.masks)) == {0, 1, 2}
    assert splits["test"].names[0] == "Abyssinian_1"
    assert list(splits["test"].species[:2]) == [0, 0]


def test_offline_tfds_points_to_data_dir(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection (no network)")

    # Only the network is replaced: tfds.load runs for real up to the download.
    monkeypatch.setattr(
        tfds.download.DownloadManager, "download_and_extract", no_network
    )
    monkeypatch.setattr(tfds.download.DownloadManager, "download", no_network)
    with pytest.raises(
        RuntimeError,
        match="ConnectionError: Failed.*cannot download it: pass --data-dir DIR",
    ):
        data.load_oxford_pet(None, 32, splits=["test"], tfds_data_dir=str(tmp_path))
