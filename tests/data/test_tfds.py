"""The TensorFlow Datasets source, through TFDS's real builder code path.

No test reaches the network: `tfds.testing.mock_data` stands in for a
prepared copy, and `sources.check_connection` (the probe of the download
host) is replaced wherever it could run.
"""

import io
import socket
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tfseg import data
from tfseg.data import sources
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


def never(*args, **kwargs):
    raise AssertionError("the network was probed")


def test_tfds_source_gives_the_same_examples_as_the_folder_source(
    tmp_path, monkeypatch
):
    # mock_data stands for data that is there: nothing to download or probe.
    monkeypatch.setattr(sources, "check_connection", never)
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


@pytest.fixture
def offline(monkeypatch):
    """No connection opens, and any attempt fails the test."""
    monkeypatch.setattr(socket, "create_connection", never)
    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", never)
    monkeypatch.setattr(tfds.download.DownloadManager, "download", never)


def test_offline_without_a_prepared_copy_fails_fast_naming_data_dir(
    tmp_path, monkeypatch, offline
):
    probed = []

    def unreachable(url, timeout=sources.CONNECT_TIMEOUT):
        probed.append(url)
        return "OSError: [Errno 101] Network is unreachable"

    monkeypatch.setattr(sources, "check_connection", unreachable)
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as error:
        data.load_oxford_pet(None, 32, splits=["test"], tfds_data_dir=str(tmp_path))
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert "pass --data-dir DIR" in message
    assert "images.tar.gz and annotations.tar.gz" in message
    assert f"no prepared copy of 'oxford_iiit_pet' in '{tmp_path}" in message
    assert "thor.robots.ox.ac.uk:443 (OSError: [Errno 101]" in message
    assert "network access" in message and "$TFDS_DATA_DIR" in message
    # One probe per host the TFDS builder downloads from.
    assert len(probed) == 1 and probed[0].startswith("https://thor.robots.ox.ac.uk/")


def test_a_failed_download_still_points_to_data_dir(tmp_path, monkeypatch, offline):
    def no_network(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection (no network)")

    # The host answered the probe, then the download itself failed.
    monkeypatch.setattr(sources, "check_connection", lambda url: None)
    manager = tfds.download.DownloadManager
    monkeypatch.setattr(manager, "download_and_extract", no_network)
    monkeypatch.setattr(manager, "download", no_network)
    with pytest.raises(
        RuntimeError,
        match="ConnectionError: Failed.*cannot download it: pass --data-dir DIR",
    ):
        data.load_oxford_pet(None, 32, splits=["test"], tfds_data_dir=str(tmp_path))


def test_a_prepared_copy_is_read_without_probing(tmp_path, monkeypatch, offline):
    monkeypatch.setattr(sources, "check_connection", never)
    # A copy TFDS takes as prepared (its folder exists), but broken.
    copy = tmp_path / "oxford_iiit_pet" / "4.0.0"
    copy.mkdir(parents=True)
    with pytest.raises(RuntimeError, match="cannot read its copy.*Delete that folder"):
        data.load_oxford_pet(None, 32, splits=["test"], tfds_data_dir=str(tmp_path))


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_check_connection_on_loopback(no_proxy):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert sources.check_connection(f"http://127.0.0.1:{port}/x", 2) is None
    # The port is closed now: refused, and said so.
    reason = sources.check_connection(f"http://127.0.0.1:{port}/x", 2)
    assert reason.startswith("ConnectionRefusedError")


def test_check_connection_goes_through_the_proxy(no_proxy):
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        port = proxy.getsockname()[1]
        no_proxy.setenv("https_proxy", f"http://127.0.0.1:{port}")
        # Only the (loopback) proxy is contacted, never the host itself.
        no_proxy.setattr(socket, "getaddrinfo", guard_loopback(socket.getaddrinfo))
        assert sources.check_connection("https://example.invalid/file", 2) is None


def guard_loopback(getaddrinfo):
    def lookup(host, *args, **kwargs):
        assert host == "127.0.0.1", f"looked up {host}"
        return getaddrinfo(host, *args, **kwargs)

    return lookup
