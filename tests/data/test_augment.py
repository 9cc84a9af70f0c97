"""Augmentation moves image and mask together, is seeded, and trains only."""

import numpy as np
import pytest
import tensorflow as tf

from tests.data.palette import mask_from_image
from tests.data.palette import palette_examples
from tests.data.palette import source_indices
from tfseg import data
from tfseg.data.augment import DRAWS
from tfseg.data.augment import NUMPY_OPS
from tfseg.data.augment import _augment
from tfseg.data.augment import tf_ops
from tfseg.data.augment import warp


def no_colour(**geometry):
    return data.Augmentation(brightness=0.0, contrast=0.0, saturation=0.0, **geometry)


def first_batch(examples, **kwargs):
    images, masks = next(iter(data.make_dataset(examples, 16, **kwargs)))
    return images.numpy(), masks.numpy()


def test_one_draw_moves_image_and_mask_together():
    examples = palette_examples()
    images, masks = first_batch(
        examples, training=True, augmentation=no_colour(scale=(0.8, 1.5), rotation=15)
    )
    assert not np.array_equal(masks, examples.masks)  # something moved
    agreement = (mask_from_image(images) == masks[..., 0]).mean()
    # Only pixels on class edges, blended by bilinear sampling, may differ.
    assert agreement > 0.97


def test_identity_augmentation_returns_the_batch_unchanged():
    examples = palette_examples()
    identity = no_colour(flip=False, scale=(1.0, 1.0), rotation=0.0)
    images, masks = first_batch(examples, augmentation=identity, training=True, seed=5)
    order = source_indices(examples, masks)
    np.testing.assert_array_equal(images, examples.images[order].astype(np.float32))
    np.testing.assert_array_equal(masks, examples.masks[order])


def test_the_default_augmentation_moves_masks_with_images_and_keeps_classes():
    examples = palette_examples()
    images, masks = first_batch(
        examples, training=True, augmentation=data.Augmentation(), seed=3
    )
    assert set(np.unique(masks)) <= {0, 1, 2}
    # Every warp, colour jitter included: the mask is still the image's
    # (read back by the nearest class colour), though both moved.
    assert not np.array_equal(masks, examples.masks)
    agreement = (mask_from_image(images) == masks[..., 0]).mean()
    assert agreement > 0.95, agreement


def test_colour_jitter_changes_images_only():
    examples = palette_examples()
    jitter = data.Augmentation(
        flip=False, scale=(1.0, 1.0), rotation=0.0, brightness=0.3
    )
    images, masks = first_batch(examples, training=True, augmentation=jitter, seed=1)
    recovered = source_indices(examples, masks)
    assert not np.allclose(images, examples.images[recovered])
    assert images.min() >= 0 and images.max() <= 255


def test_seeded_epochs_are_reproducible_and_differ_from_each_other():
    examples = palette_examples(32)

    def epochs(seed):
        dataset = data.make_dataset(
            examples, 8, training=True, augmentation=data.Augmentation(), seed=seed
        )
        return [[b[0].numpy() for b in dataset] for _ in range(2)]

    first, again, other = epochs(3), epochs(3), epochs(4)
    for epoch_a, epoch_b in zip(first, again):
        for a, b in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][0], first[1][0])  # epoch 2 is new
    assert not np.array_equal(first[0][0], other[0][0])


def test_evaluation_batches_are_neither_shuffled_nor_augmented():
    examples = palette_examples(10)
    batches = list(data.make_dataset(examples, 4, augmentation=data.Augmentation()))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    images = np.concatenate([b[0].numpy() for b in batches])
    assert images.dtype == np.float32
    np.testing.assert_array_equal(images, examples.images)


def test_bad_augmentation_settings_are_explained():
    with pytest.raises(ValueError, match="`scale` must be a range"):
        data.Augmentation(scale=(1.2, 0.9))
    with pytest.raises(ValueError, match="`rotation` must be >= 0"):
        data.Augmentation(rotation=-5)


def test_warp_identity_is_exact():
    images = tf.random.uniform([2, 9, 7, 3], 0, 255)
    masks = tf.cast(tf.random.uniform([2, 9, 7, 1], 0, 3, tf.int32), tf.uint8)
    identity = tf.constant([[1.0, 0, 0, 0, 1.0, 0]] * 2)
    warped, warped_masks = warp(images, masks, identity, tf_ops())
    np.testing.assert_array_equal(warped.numpy(), images.numpy())
    np.testing.assert_array_equal(warped_masks.numpy(), masks.numpy())


def test_tensorflow_and_numpy_warps_agree():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (3, 20, 24, 3)).astype(np.float32)
    masks = rng.integers(0, 3, (3, 20, 24, 1)).astype(np.uint8)
    # Rotated, zoomed, flipped and shifted past the border (reflection).
    transform = np.float32(
        [
            [0.9, 0.2, 3.5, -0.2, 0.9, 1.2],
            [-1.1, 0, 22, 0, 1.1, -4],
            [0.7, 0, 5, 0, 0.7, 6],
        ]
    )
    ours, our_masks = warp(images, masks, transform, NUMPY_OPS)
    theirs, their_masks = warp(
        tf.constant(images), tf.constant(masks), tf.constant(transform), tf_ops()
    )
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-3)
    # Nearest-neighbour picks may differ only where a coordinate sits on .5.
    assert (our_masks == their_masks.numpy()).mean() > 0.999


def test_the_numpy_way_computes_what_the_tensorflow_way_does():
    # Same uniform draws in, same images and masks out: one definition.
    examples = palette_examples(6)
    uniforms = np.random.default_rng(4).random((DRAWS, 6), dtype=np.float32)
    amounts = data.Augmentation(rotation=20, brightness=0.3).amounts()
    images = examples.images.astype(np.float32)
    ours = _augment(NUMPY_OPS, images, examples.masks, uniforms, amounts)
    theirs = _augment(
        tf_ops(),
        tf.constant(images),
        tf.constant(examples.masks),
        tf.constant(uniforms),
        [tf.constant(a, tf.float32) for a in amounts],
    )
    np.testing.assert_allclose(ours[0], theirs[0].numpy(), atol=0.05)
    assert (ours[1] == theirs[1].numpy()).mean() > 0.999
