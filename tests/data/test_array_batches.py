"""The TensorFlow-free data path: NumPy/JAX augmentation and ArrayBatches."""

import importlib.util

import keras
import numpy as np
import pytest

from tests.data.palette import mask_from_image
from tests.data.palette import palette_examples
from tests.data.palette import source_indices
from tfseg.data import ArrayBatches
from tfseg.data import Augmentation

pytestmark = pytest.mark.backend_agnostic

GEOMETRY = Augmentation(
    scale=(0.8, 1.5), rotation=15, brightness=0.0, contrast=0.0, saturation=0.0
)


def epoch(batches):
    batches.on_epoch_begin()
    return [batches[i] for i in range(batches.num_batches)]


def test_numpy_augmentation_moves_image_and_mask_together():
    examples = palette_examples()
    images, masks = GEOMETRY.on_arrays(examples.images, examples.masks, seed=0)
    assert images.dtype == np.float32 and masks.dtype == np.uint8
    assert not np.array_equal(masks, examples.masks)
    assert (mask_from_image(images) == masks[..., 0]).mean() > 0.97
    assert set(np.unique(masks)) <= {0, 1, 2}


def test_numpy_identity_augmentation_is_exact():
    examples = palette_examples(4)
    identity = Augmentation(
        flip=False, scale=(1.0, 1.0), rotation=0, brightness=0, contrast=0, saturation=0
    )
    images, masks = identity.on_arrays(examples.images, examples.masks, seed=3)
    np.testing.assert_array_equal(images, examples.images.astype(np.float32))
    np.testing.assert_array_equal(masks, examples.masks)


def test_numpy_draws_follow_the_seed_and_jitter_stays_in_range():
    examples = palette_examples(8)
    augmentation = Augmentation(brightness=0.3)
    first = augmentation.on_arrays(examples.images, examples.masks, seed=[1, 2])
    again = augmentation.on_arrays(examples.images, examples.masks, seed=[1, 2])
    other = augmentation.on_arrays(examples.images, examples.masks, seed=[1, 3])
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])
    assert first[0].min() >= 0 and first[0].max() <= 255


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs JAX")
def test_on_device_augmentation_equals_the_numpy_one():
    examples = palette_examples(8)
    augmentation = Augmentation(brightness=0.3)
    images, masks = augmentation.on_arrays(examples.images, examples.masks, seed=7)
    on_device = augmentation.on_arrays(
        examples.images, examples.masks, seed=7, on_device=True
    )
    np.testing.assert_allclose(np.asarray(on_device[0]), images, atol=0.05)
    assert (np.asarray(on_device[1]) == masks).mean() > 0.999


def test_each_epoch_serves_every_example_once_in_a_new_seeded_order():
    examples = palette_examples(20)
    batches = ArrayBatches(examples, 8, training=True, seed=5, on_device=False)
    assert batches.num_batches == 2  # the last 4 are dropped, as in tf.data
    first, second = epoch(batches), epoch(batches)
    order_first = [i for b in first for i in source_indices(examples, b[1])]
    order_second = [i for b in second for i in source_indices(examples, b[1])]
    assert len(set(order_first)) == 16 and order_first != order_second
    assert first[0][0].dtype == np.float32 and first[0][1].dtype == np.uint8

    # A run resumed at epoch 1 sees what an unbroken run saw in its epoch 1.
    resumed = ArrayBatches(
        examples, 8, training=True, seed=5, initial_epoch=1, on_device=False
    )
    np.testing.assert_array_equal(epoch(resumed)[0][1], second[0][1])
    other_seed = ArrayBatches(examples, 8, training=True, seed=6, on_device=False)
    assert not np.array_equal(epoch(other_seed)[0][1], first[0][1])


def test_augmented_batches_are_reproducible():
    examples = palette_examples(16)

    def first_images():
        batches = ArrayBatches(
            examples, 8, training=True, augmentation=Augmentation(), seed=2
        )
        return np.asarray(epoch(batches)[0][0])

    np.testing.assert_array_equal(first_images(), first_images())


def test_evaluation_batches_keep_order_and_the_last_small_batch():
    examples = palette_examples(10)
    batches = ArrayBatches(examples, 4, augmentation=Augmentation())
    served = epoch(batches)
    assert [len(b[0]) for b in served] == [4, 4, 2]
    images = np.concatenate([b[0] for b in served])
    np.testing.assert_array_equal(images, examples.images.astype(np.float32))


def test_class_weights_come_as_per_pixel_sample_weights():
    examples = palette_examples(8)
    batches = ArrayBatches(
        examples,
        4,
        training=True,
        augmentation=GEOMETRY,
        class_weights=(0.5, 1.0, 3.0),
    )
    for _, masks, weights in epoch(batches):
        expected = np.float32([0.5, 1.0, 3.0])[np.asarray(masks)[..., 0]]
        np.testing.assert_array_equal(np.asarray(weights), expected)


def test_too_few_examples_for_one_batch_is_explained():
    with pytest.raises(ValueError, match="no whole batch of 16.*--batch-size to 5"):
        ArrayBatches(palette_examples(5), 16, training=True)
    with pytest.raises(ValueError, match="positive integer; received 0"):
        ArrayBatches(palette_examples(5), 0)


def test_keras_fit_reads_the_batches_and_starts_each_epoch():
    examples = palette_examples(8, size=16)
    batches = ArrayBatches(
        examples, 4, training=True, augmentation=Augmentation(), seed=1
    )
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Conv2D(3, 1)(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(batches, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    assert batches.epoch == 2  # on_epoch_begin ran before each of 3 epochs
