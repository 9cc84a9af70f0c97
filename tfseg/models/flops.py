"""Counts the multiply-accumulate operations (MACs) of a built Keras model.

One MAC is one multiplication and one addition; FLOPs are about twice the
MACs. Convolutions (plain, grouped, transposed, depthwise and separable) and
dense layers are counted, which is where nearly all the arithmetic of these
networks is; element-wise layers (normalisation, activations, additions,
pooling, resizing) are left out, as in the usual published figures.
"""

import math

import keras
from keras import layers


def count_macs(model):
    """Returns the MACs of one forward pass of `model` on one example.

    Args:
        model: a built `keras.Model` with static spatial shapes (nested
            models are counted through).

    Returns:
        int, multiply-accumulates per example.

    Raises:
        ValueError: if a counted layer has an unknown (`None`) spatial size.

    Example:

    >>> inputs = keras.Input((8, 8, 3))
    >>> outputs = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    >>> count_macs(keras.Model(inputs, outputs))  # 8 * 8 * 4 * 3 * 3 * 3
    6912
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_macs(layer)
            continue
        for node in layer._inbound_nodes:
            if node.input_tensors:  # input layers have none
                total += _node_macs(
                    layer, node.input_tensors[0], node.output_tensors[0]
                )
    return total


def _node_macs(layer, inputs, outputs):
    if not isinstance(layer, (layers.Dense, _CONVOLUTIONS)):
        return 0
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    in_shape = _per_example(inputs.shape, channels_first, layer)
    out_shape = _per_example(outputs.shape, channels_first, layer)
    in_channels, out_channels = in_shape[-1], out_shape[-1]
    if isinstance(layer, layers.Dense):
        return math.prod(in_shape[:-1]) * in_channels * out_channels
    kernel_area = math.prod(layer.kernel_size)
    if isinstance(layer, _SEPARABLE):
        depthwise_channels = in_channels * layer.depth_multiplier
        return (
            math.prod(out_shape[:-1])
            * depthwise_channels
            * (kernel_area + out_channels)
        )
    if isinstance(layer, _DEPTHWISE):
        return math.prod(out_shape[:-1]) * out_channels * kernel_area
    if isinstance(layer, _TRANSPOSED):
        # Every input position scatters a kernel-sized patch to every output
        # channel.
        return math.prod(in_shape[:-1]) * in_channels * kernel_area * out_channels
    groups = getattr(layer, "groups", 1)
    return (
        math.prod(out_shape[:-1]) * out_channels * kernel_area * in_channels // groups
    )


def _per_example(shape, channels_first, layer):
    shape = tuple(shape[1:])
    if channels_first:
        shape = shape[1:] + shape[:1]
    if any(size is None for size in shape):
        raise ValueError(
            f"count_macs needs static shapes; layer {layer.name!r} has shape "
            f"{shape}. Build the model with a fixed input_shape."
        )
    return shape


_SEPARABLE = (layers.SeparableConv1D, layers.SeparableConv2D)
_DEPTHWISE = (layers.DepthwiseConv1D, layers.DepthwiseConv2D)
_TRANSPOSED = (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)
_CONVOLUTIONS = (
    _SEPARABLE
    + _DEPTHWISE
    + _TRANSPOSED
    + (layers.Conv1D, layers.Conv2D, layers.Conv3D)
)
