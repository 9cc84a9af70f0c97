"""Canonical sizes: parameter counts and forward MACs of the published models.

Backend-independent arithmetic, so checked once, on the default backend:
building the 134 M-parameter FCNs again on JAX adds minutes to CI and tests
nothing new (the JAX pass builds, trains and saves every model in its small
configuration).
"""

import numpy as np
import pytest

from tfseg.models import count_macs
from tfseg.models import create_model

# Canonical sizes: (name, arguments, parameters, trainable parameters).
PINNED = [
    ("fcn32s", {}, 134_309_699, 134_309_699),
    ("fcn16s", {}, 134_283_734, 134_283_734),
    ("fcn8s", {}, 134_277_737, 134_277_737),
    ("unet", {}, 31_031_875, 31_031_875),
    (
        "unet",
        dict(padding="valid", input_shape=(572, 572, 1), num_classes=2),
        31_030_658,
        31_030_658,
    ),
    ("mobilenet_unet", dict(freeze_encoder=True), 6_504_227, 4_660_323),
    ("pix2pix", dict(input_shape=(256, 256, 3)), 54_425_859, 54_414_979),
    ("pix2pix", {}, 41_838_851, 41_830_019),
]


def count_trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "name, kwargs, params, trainable",
    PINNED,
    ids=[f"{p[0]}-{i}" for i, p in enumerate(PINNED)],
)
def test_parameter_counts_are_canonical(name, kwargs, params, trainable):
    model = create_model(name, **kwargs)
    assert model.count_params() == params
    assert count_trainable(model) == trainable


# (model, arguments, canonical GMACs from the literature / ANCHORS.md)
CANONICAL = [
    ("unet", dict(padding="valid", input_shape=(572, 572, 1), num_classes=2), 150.4),
    ("unet", dict(input_shape=(128, 128, 3)), 12.0),
    ("fcn8s", dict(input_shape=(128, 128, 3)), 6.9),
    ("mobilenet_unet", dict(input_shape=(128, 128, 3)), 0.59),
    ("pix2pix", dict(input_shape=(256, 256, 3)), 6.05),
    ("pix2pix", dict(input_shape=(128, 128, 3)), 1.51),
]


@pytest.mark.parametrize("name, kwargs, gmacs", CANONICAL)
def test_count_macs_agrees_with_the_canonical_figures(name, kwargs, gmacs):
    macs = count_macs(create_model(name, **kwargs))
    assert macs / 1e9 == pytest.approx(gmacs, rel=0.01)
