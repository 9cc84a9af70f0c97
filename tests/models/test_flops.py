"""The MAC counter against a hand count and the canonical published figures."""

import keras

from tfseg.models import count_macs


def test_count_macs_matches_a_hand_count():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 * 4 * 3*3*3
    x = keras.layers.BatchNormalization()(x)  # not counted
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 4*4 * 4 * 9
    x = keras.layers.SeparableConv2D(6, 3, padding="same")(x)  # 4*4 * 4 * (9 + 6)
    x = keras.layers.Conv2D(6, 1, groups=2)(x)  # 4*4 * 6 * 6/2
    x = keras.layers.Conv2DTranspose(2, 2, strides=2)(x)  # 4*4 * 6 * 2*2 * 2
    x = keras.layers.Dense(5)(x)  # 8*8 * 2 * 5
    model = keras.Model(inputs, x)
    hand = (
        8 * 8 * 4 * 27
        + 4 * 4 * 4 * 9
        + 4 * 4 * 4 * (9 + 6)
        + 4 * 4 * 6 * 3
        + 4 * 4 * 6 * 4 * 2
        + 8 * 8 * 2 * 5
    )
    assert count_macs(model) == hand == 6912 + 576 + 960 + 288 + 768 + 640


def test_count_macs_counts_nested_models():
    inner_inputs = keras.Input((4, 4, 2))
    inner = keras.Model(inner_inputs, keras.layers.Conv2D(3, 1)(inner_inputs))
    inputs = keras.Input((4, 4, 2))
    outer = keras.Model(inputs, keras.layers.Conv2D(1, 1)(inner(inputs)))
    assert count_macs(outer) == 4 * 4 * 3 * 2 + 4 * 4 * 1 * 3
