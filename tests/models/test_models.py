"""Registry-wide model tests: a new model is tested by adding a line to SMALL.

Run under every Keras backend (CI runs this folder again with
KERAS_BACKEND=jax).
"""

import keras
import numpy as np
import pytest

from tfseg.models import create_model
from tfseg.models import list_models

# What the backend changes runs again on JAX (CI's second pass): building,
# calling, saving and training. The registry's and builders' own Python
# (names, arguments, which layers are made) runs once.
agnostic = pytest.mark.backend_agnostic

# Small but complete configurations of every registered model, for the tests
# that train, save or build many times.
SMALL = {
    "fcn32s": dict(fc_width=16),
    "fcn16s": dict(fc_width=16),
    "fcn8s": dict(fc_width=16),
    "unet": dict(base_filters=4),
    "mobilenet_unet": dict(alpha=0.35, decoder_filters=(16, 16, 8, 8)),
    "pix2pix": dict(base_filters=4),
}

# FCNs without pretrained weights have no normalisation and large inputs
# (x - ImageNet mean): a gentler step keeps them stable, as in the paper.
LEARNING_RATES = {"fcn32s": 1e-4, "fcn16s": 1e-4, "fcn8s": 1e-4}


def square_masks(batch, size, seed=0):
    """Images with a bright square on a dark background and their masks.

    Mask: 0 inside the square (pet), 2 on its 2 px edge (border), 1 outside.
    """
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 60, (batch, size, size, 3)).astype("float32")
    masks = np.ones((batch, size, size), "int32")
    for i in range(batch):
        top, left = rng.integers(2, size // 2, 2)
        side = int(rng.integers(size // 4, size // 2))
        images[i, top : top + side, left : left + side] += 180
        masks[i, top - 2 : top + side + 2, left - 2 : left + side + 2] = 2
        masks[i, top : top + side, left : left + side] = 0
    return images, masks


def test_registry_lists_the_canonical_models():
    assert set(list_models()) >= {
        "fcn32s",
        "fcn16s",
        "fcn8s",
        "unet",
        "mobilenet_unet",
        "pix2pix",
    }
    assert sorted(SMALL) == list_models(), "add a SMALL line for every new model"


def shape_cases():
    """Every shape and class count; the first of them also on JAX."""
    cases = [
        (shape, num_classes)
        for shape in [(64, 64, 3), (96, 160, 3), (64, 128, 1)]
        for num_classes in (3, 2)
    ]
    return [
        pytest.param(*case, marks=[agnostic] if index == 0 else [])
        for index, case in enumerate(cases)
    ]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize(("shape", "num_classes"), shape_cases())
def test_output_shape_matches_input(name, shape, num_classes):
    model = create_model(
        name, input_shape=shape, num_classes=num_classes, **SMALL[name]
    )
    assert model.input_shape == (None,) + shape
    assert model.output_shape == (None, shape[0], shape[1], num_classes)
    batch = np.random.default_rng(0).uniform(0, 255, (2,) + shape).astype("float32")
    logits = keras.ops.convert_to_numpy(model(batch, training=False))
    assert logits.shape == (2, shape[0], shape[1], num_classes)
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()


def test_input_shape_without_channels_means_rgb():
    model = create_model("unet", input_shape=(64, 64), base_filters=4)
    assert model.input_shape == (None, 64, 64, 3)


@agnostic
@pytest.mark.parametrize("name", list_models())
def test_logits_are_float32_under_mixed_precision(name):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = create_model(name, input_shape=(64, 64, 3), **SMALL[name])
    compute_dtypes = {layer.compute_dtype for layer in model.layers}
    assert "bfloat16" in compute_dtypes
    logits = model(np.zeros((1, 64, 64, 3), "float32"), training=False)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


@agnostic
@pytest.mark.parametrize("name", list_models())
def test_save_and_load_round_trip(name, tmp_path):
    model = create_model(name, input_shape=(64, 64, 3), **SMALL[name])
    batch = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(batch, training=False))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    # No custom objects: only built-in Keras layers are used.
    loaded = keras.models.load_model(path)
    assert loaded.name == model.name
    assert loaded.count_params() == model.count_params()
    actual = keras.ops.convert_to_numpy(loaded(batch, training=False))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@agnostic
@pytest.mark.parametrize("name", list_models())
def test_a_few_training_steps_lower_the_loss(name):
    model = create_model(name, input_shape=(64, 64, 3), **SMALL[name])
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATES.get(name, 1e-3)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    images, masks = square_masks(4, 64)
    losses = [float(model.train_on_batch(images, masks)) for _ in range(8)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.97 * losses[0], losses


@pytest.mark.parametrize("name", list_models())
def test_two_builds_share_no_weights(name):
    first = create_model(name, input_shape=(64, 64, 3), **SMALL[name])
    second = create_model(name, input_shape=(64, 64, 3), **SMALL[name])
    assert {id(w) for w in first.weights}.isdisjoint(id(w) for w in second.weights)
    before = [w.numpy() for w in first.weights]
    for weight in second.weights:
        weight.assign(np.full(weight.shape, 7.0, weight.dtype))
    for weight, value in zip(first.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)


@pytest.mark.parametrize("name", ["fcn8s", "unet", "mobilenet_unet", "pix2pix"])
def test_default_names_are_derived_from_arguments(name):
    model = create_model(name, input_shape=(64, 64, 3), **SMALL[name])
    assert model.name == name
    assert create_model(name, name="mine", **SMALL[name]).name == "mine"
