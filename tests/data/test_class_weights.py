"""Both batchers check class weights and look them up the same way."""

import numpy as np
import pytest

from tests.data.palette import palette_examples
from tfseg import data


def as_arrays(batches):
    return [tuple(np.asarray(part) for part in batch) for batch in batches]


def tf_data(examples, **kwargs):
    return as_arrays(data.make_dataset(examples, 4, **kwargs))


def array_batches(examples, **kwargs):
    batches = data.ArrayBatches(examples, 4, on_device=False, **kwargs)
    return as_arrays(batches[i] for i in range(batches.num_batches))


BATCHERS = [tf_data, array_batches]


@pytest.mark.parametrize("batcher", BATCHERS, ids=lambda b: b.__name__)
def test_weights_are_the_weight_of_each_pixels_class(batcher):
    examples = palette_examples(8)
    for _, masks, weights in batcher(examples, class_weights=(0.0, 1.0, 3.0)):
        assert weights.dtype == np.float32 and weights.shape == masks.shape[:3]
        np.testing.assert_array_equal(weights, np.float32([0, 1, 3])[masks[..., 0]])


def test_the_two_batchers_give_the_same_weights():
    examples = palette_examples(8)
    ours = tf_data(examples, class_weights=[0.5, 1, 2])
    theirs = array_batches(examples, class_weights=[0.5, 1, 2])
    for (_, masks_a, weights_a), (_, masks_b, weights_b) in zip(ours, theirs):
        np.testing.assert_array_equal(masks_a, masks_b)
        np.testing.assert_array_equal(weights_a, weights_b)


@pytest.mark.parametrize("batcher", BATCHERS, ids=lambda b: b.__name__)
@pytest.mark.parametrize(
    "weights, message",
    [
        ((1.0, 2.0), "has 2 value\\(s\\), but the masks hold classes 0..2: pass 3"),
        ((1.0, -1.0, 2.0), "one finite weight >= 0 per class"),
        ((1.0, float("nan"), 2.0), "one finite weight >= 0 per class"),
        ((0.0, 0.0, 0.0), "at least one positive"),
        ([[1.0, 2.0, 3.0]], "must be a flat list"),
        (("a", "b", "c"), "must be a flat list"),
    ],
)
def test_bad_weights_are_refused_the_same_way(batcher, weights, message):
    with pytest.raises(ValueError, match=message):
        batcher(palette_examples(4), class_weights=weights)
