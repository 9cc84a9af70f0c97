"""Claims tfseg makes about what its models compute, each checked by its effect.

- Input normalisation: every tfseg model takes RGB images in 0..255 and
  normalises them inside, so a pretrained encoder must compute on a raw image
  what its `keras.applications` network computes on `preprocess_input(image)`
  (MobileNetV2: [-1, 1]; VGG16 and ResNet50: BGR minus the ImageNet mean,
  folded into a flipped first kernel).
- Copy and crop: the valid-padding U-Net crops each skip from its centre, so
  a skip pixel is concatenated with the upsampled pixel of the same place.
"""

import keras
import numpy as np
import pytest
from PIL import Image

from tfseg.models import build_unet
from tfseg.models import encoders

# Not in CI's JAX pass: what these check is the graph (weights, crops),
# which the backend does not change, and on JAX they cost a minute of XLA
# compilation; tests/models/test_models.py builds, runs and trains every
# model on both backends.

SIZE = 64
# One cat and one dog of the shared Oxford-IIIT Pet sample.
PET_IMAGES = ("Abyssinian_1.jpg", "american_bulldog_10.jpg")
MOBILENET_V2_WEIGHTS = (
    "keras_weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
)

# encoder -> (Keras's own preprocessing for its network, constructor
# arguments, weights file in the shared data folder or None for random
# weights saved by keras.applications itself).
REFERENCES = {
    "vgg16": (keras.applications.vgg16.preprocess_input, {}, None),
    "resnet50": (keras.applications.resnet50.preprocess_input, {}, None),
    "mobilenet_v2": (
        keras.applications.mobilenet_v2.preprocess_input,
        {"alpha": 0.35},
        MOBILENET_V2_WEIGHTS,
    ),
}


@pytest.fixture
def pet_images(shared_data):
    """Two real photographs, RGB, resized to SIZE px, float32 in 0..255."""
    images = []
    for name in PET_IMAGES:
        with Image.open(shared_data / "oxford_iiit_pet" / "images" / name) as image:
            image = image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
            images.append(np.asarray(image, dtype="float32"))
    return np.stack(images)


def test_every_pretrained_encoder_has_a_reference():
    assert sorted(REFERENCES) == sorted(encoders.APPLICATION_ENCODERS)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_encoder_on_rgb_matches_keras_on_preprocess_input(
    name, pet_images, shared_data, tmp_path
):
    preprocess_input, kwargs, weights_file = REFERENCES[name]
    spec = encoders.APPLICATION_ENCODERS[name]
    weights = None if weights_file is None else str(shared_data / weights_file)
    reference = getattr(keras.applications, spec.constructor)(
        include_top=False, weights=weights, input_shape=(SIZE, SIZE, 3), **kwargs
    )
    if weights is None:
        weights = str(tmp_path / f"{name}.weights.h5")
        reference.save_weights(weights)
    reference = keras.Model(
        reference.input, [reference.get_layer(tap).output for tap in spec.taps.values()]
    )
    inputs = keras.Input((SIZE, SIZE, 3))
    features = encoders.build_encoder(name, inputs, weights=weights, **kwargs)
    model = keras.Model(inputs, [features[stride] for stride in spec.taps])

    # preprocess_input may work in place on a float array: give it a copy.
    expected = reference(preprocess_input(pet_images.copy()), training=False)
    actual = model(pet_images, training=False)
    for stride, got, want in zip(spec.taps, actual, expected):
        got, want = keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want)
        scale = np.abs(want).max()
        assert scale > 0, f"stride {stride}: the reference features are all zero"
        np.testing.assert_allclose(
            got, want, rtol=1e-4, atol=1e-4 * scale, err_msg=f"stride {stride}"
        )


def symmetrize_kernels(model):
    """Makes every kernel mirror-symmetric along both spatial axes.

    With such kernels every layer of a U-Net commutes with flipping the image
    (the valid-padding sizes keep each pooling window whole under a flip),
    except a crop that takes more from one side than from the other.
    """
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            kernel = (
                kernel + kernel[::-1] + kernel[:, ::-1] + kernel[::-1, ::-1]
            ) / 4.0
            layer.kernel.assign(kernel)


# (depth, input height and width). Depth 2 crops 8 and 32 px off its skips'
# sides, depth 3 8, 32 and 80 px.
VALID_UNETS = [(2, (60, 68)), (3, (100, 108))]


@pytest.mark.parametrize("depth, size", VALID_UNETS)
def test_valid_unet_crops_each_skip_from_its_centre(depth, size):
    # 8 filters, not fewer: with 2, some random draws (JAX's, here) leave
    # every last-stage ReLU dead and the logits all zero.
    model = build_unet(size + (3,), padding="valid", depth=depth, base_filters=8)
    crops = [layer for layer in model.layers if "crop" in layer.name]
    assert len(crops) == depth
    assert all(np.any(crop.cropping) for crop in crops)
    symmetrize_kernels(model)
    image = np.random.default_rng(0).uniform(0, 255, (1,) + size + (3,))
    image = image.astype("float32")
    logits = keras.ops.convert_to_numpy(model(image, training=False))
    scale = np.abs(logits).max()
    for axis, direction in ((1, "up-down"), (2, "left-right")):
        flipped = np.flip(image, axis).copy()
        logits_of_flipped = keras.ops.convert_to_numpy(model(flipped, training=False))
        # The image is not symmetric, so neither are its logits: the check
        # below compares two different arrays.
        assert np.abs(logits_of_flipped - logits).max() > 1e-2 * scale
        np.testing.assert_allclose(
            logits_of_flipped,
            np.flip(logits, axis),
            rtol=1e-4,
            atol=1e-5 * scale,
            err_msg=f"flipping the input {direction} does not flip the output: "
            "a skip is cropped off centre",
        )
