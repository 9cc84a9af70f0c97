"""The image size a described folder trains at when --image-size is not given."""

import numpy as np
import pytest
from PIL import Image

from tfseg.config import TrainConfig
from tfseg.data.folders import Pair
from tfseg.data.sizing import automatic_image_size
from tfseg.data.sizing import with_automatic_size


def write_pairs(folder, shapes):
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    pairs = []
    for index, (height, width) in enumerate(shapes):
        image = folder / "images" / f"{index:03d}.png"
        mask = folder / "masks" / f"{index:03d}.png"
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(image)
        Image.fromarray(np.zeros((height, width), np.uint8)).save(mask)
        pairs.append(Pair(str(image), str(mask), f"{index:03d}"))
    return pairs


@pytest.mark.parametrize(
    "shapes, expected",
    [
        ([(360, 480)] * 3, (224, 320)),  # CamVid: 240 x 320, height to 224
        ([(100, 100)] * 3, 96),  # small and square: a side
        ([(64, 300)] * 2 + [(600, 900)], (64, 288)),  # the median shape
        ([(40, 40)], 32),  # never below one multiple
    ],
)
def test_the_median_shape_scaled_to_320_px_in_multiples_of_32(
    tmp_path, shapes, expected
):
    assert automatic_image_size(write_pairs(tmp_path, shapes)) == expected


def test_a_described_folder_gets_its_size_and_the_pets_keep_theirs(tmp_path):
    write_pairs(tmp_path / "data", [(360, 480)] * 6)
    described = TrainConfig(
        data_dir=str(tmp_path / "data"), description={"classes": ["a", "b"]}
    )
    said = []
    assert with_automatic_size(described, said.append).image_size == (224, 320)
    assert "224x320" in said[0]
    pets = TrainConfig(data_dir=str(tmp_path / "data"))
    assert with_automatic_size(pets, said.append) is pets
