"""U-Net valid sizes and overlap-tile inference; FCN bilinear upsampling."""

import keras
import numpy as np
import pytest

from tfseg.models import build_fcn
from tfseg.models import build_unet
from tfseg.models import predict_tiled
from tfseg.models import valid_unet_output_size
from tfseg.models import valid_unet_sizes
from tfseg.models.blocks import bilinear_upsample

pytestmark = pytest.mark.backend_agnostic


def test_valid_sizes_follow_the_paper():
    sizes = valid_unet_sizes(1024)
    assert sizes[:5] == [188, 204, 220, 236, 252]
    assert 572 in sizes
    assert all((s - 188) % 16 == 0 for s in sizes)
    assert len(sizes) == (1024 - 188) // 16 + 1
    assert valid_unet_output_size(572) == 388
    # Depth 3: the margin is 12 * 8 - 8 = 88 px.
    assert valid_unet_output_size(valid_unet_sizes(200, depth=3)[0], depth=3) > 0


@pytest.mark.parametrize("size", [188, 204, 252])
def test_valid_unet_output_is_184_px_smaller(size):
    model = build_unet((size, size, 1), padding="valid", base_filters=2, num_classes=2)
    assert model.output_shape == (None, size - 184, size - 184, 2)
    assert model.name == "unet_valid"


def test_overlap_tile_equals_one_forward_pass_on_the_mirrored_image():
    # Tiles of 204 px give 20 px outputs and advance by 16 px (2**depth).
    tile_model = build_unet((204, 204, 3), padding="valid", base_filters=2)
    # 52 + 184 = 236 is itself a valid size: one pass covers the image.
    whole_model = build_unet((236, 236, 3), padding="valid", base_filters=2)
    whole_model.set_weights(tile_model.get_weights())
    image = np.random.default_rng(0).uniform(0, 255, (52, 52, 3)).astype("float32")

    tiled = predict_tiled(tile_model, image, batch_size=4)
    mirrored = np.pad(image, ((92, 92), (92, 92), (0, 0)), mode="reflect")
    whole = keras.ops.convert_to_numpy(whole_model(mirrored[None], training=False))[0]

    assert tiled.shape == (52, 52, 3)
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-4)
    # Equal, not constant: the comparison has something to compare.
    assert np.std(tiled) > 0


@pytest.mark.parametrize("shape", [(45, 70, 1), (7, 300, 1), (1, 1, 1)])
def test_overlap_tile_covers_any_image_size(shape):
    model = build_unet((204, 204, 1), padding="valid", base_filters=2, num_classes=2)
    image = np.random.default_rng(1).uniform(0, 255, shape).astype("float32")
    logits = predict_tiled(model, image)
    assert logits.shape == shape[:2] + (2,)
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("factor", [2, 8])
def test_fcn_upsampling_starts_as_bilinear_interpolation(factor):
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, bilinear_upsample(inputs, factor, name="up"))
    x = np.random.default_rng(2).normal(size=(1, 6, 6, 2)).astype("float32")
    actual = keras.ops.convert_to_numpy(model(x))
    size = 6 * factor
    expected = keras.ops.convert_to_numpy(
        keras.ops.image.resize(
            x, (size, size), interpolation="bilinear", antialias=False
        )
    )
    # Away from the border, where resizing clamps and the transposed
    # convolution sees zero padding, the two are equal.
    inner = slice(factor, size - factor)
    np.testing.assert_allclose(
        actual[:, inner, inner], expected[:, inner, inner], atol=1e-5
    )
    assert model.get_layer("up").bias is None  # as in the paper: no bias


def test_fcn_skip_scores_start_at_zero():
    model = build_fcn((64, 64, 3), variant="8s", fc_width=8)
    for stride in (16, 8):
        kernel, bias = model.get_layer(f"score_stride{stride}").get_weights()
        assert not kernel.any() and not bias.any()
    assert model.get_layer("score_stride32").get_weights()[0].any()
