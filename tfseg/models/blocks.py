"""Layers and checks shared by every model family.

Everything here imports only `keras` and `numpy`, so the models build and
train on the TensorFlow, JAX and PyTorch backends alike.
"""

import keras
import numpy as np
from keras import layers

# Weight initialiser of the pix2pix code (Isola et al. 2017), also used by the
# TensorFlow segmentation tutorial's upsample blocks.
PIX2PIX_INIT_STDDEV = 0.02


def normalize_input_shape(input_shape, default=(128, 128, 3)):
    """Validates `input_shape` and returns it as `(height, width, channels)`.

    `(height, width)` is accepted and means three channels.
    """
    if input_shape is None:
        input_shape = default
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) not in (2, 3):
        raise ValueError(
            "`input_shape` must be a tuple `(height, width, channels)` or "
            f"`(height, width)`. Received: input_shape={input_shape!r}"
        )
    shape = tuple(input_shape) + ((3,) if len(input_shape) == 2 else ())
    for value in shape:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(
                "Every entry of `input_shape` must be a positive integer; "
                f"received input_shape={input_shape!r}. tfseg models are built "
                "for a fixed size: pass e.g. input_shape=(128, 128, 3)."
            )
        if value <= 0:
            raise ValueError(
                f"Every entry of `input_shape` must be positive; received "
                f"input_shape={input_shape!r}."
            )
    return tuple(int(value) for value in shape)


def check_positive_int(argument, value):
    """Raises `ValueError` unless `value` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"`{argument}` must be a positive integer; received {argument}={value!r}."
        )


def check_rate(argument, value):
    """Raises `ValueError` unless `value` is a rate in [0, 1)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < 1
    ):
        raise ValueError(
            f"`{argument}` must be in [0, 1); received {argument}={value!r}."
        )


def check_choice(argument, value, choices):
    """Raises `ValueError` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"`{argument}` must be one of {sorted(choices)}. Received: "
            f"{argument}={value!r}"
        )


def check_decoder_filters(decoder_filters, num_stages):
    """Raises `ValueError` unless `decoder_filters` lists `num_stages` widths."""
    if (
        not isinstance(decoder_filters, (tuple, list))
        or len(decoder_filters) != num_stages
        or not all(
            isinstance(f, (int, np.integer)) and not isinstance(f, bool) and f > 0
            for f in decoder_filters
        )
    ):
        raise ValueError(
            f"`decoder_filters` must list {num_stages} positive integers, one per "
            f"decoder stage, deepest first; received {decoder_filters!r}."
        )


def nearest_valid_sizes(size, is_valid, limit=4096):
    """Returns the valid sizes closest to `size` below and above it."""
    below = next((s for s in range(size - 1, 0, -1) if is_valid(s)), None)
    above = next((s for s in range(size + 1, limit) if is_valid(s)), None)
    return [s for s in (below, above) if s is not None]


class InputSizeError(ValueError):
    """An input size a model cannot take, with what it can.

    Attributes:
        input_shape: the `(height, width, channels)` refused.
        is_valid: the rule, a callable on one side.
        requirement: the rule in words, e.g. "divisible by 32".
        model_name: the model refusing it.
    """

    def __init__(self, message, input_shape, is_valid, requirement, model_name):
        super().__init__(message)
        self.input_shape = tuple(input_shape)
        self.is_valid = is_valid
        self.requirement = requirement
        self.model_name = model_name

    def valid_sides(self):
        """`(heights, widths)`: each side itself where valid, else the
        nearest valid sides below and above it."""
        return tuple(
            [side] if self.is_valid(side) else nearest_valid_sizes(side, self.is_valid)
            for side in self.input_shape[:2]
        )


def check_input_size(input_shape, is_valid, requirement, model_name):
    """Checks height and width against `is_valid`, naming the nearest sizes.

    Args:
        input_shape: `(height, width, channels)`.
        is_valid: callable taking one side length and returning a bool.
        requirement: words for the rule, e.g. "divisible by 32".
        model_name: what is being built, for the message.

    Raises:
        InputSizeError: (a `ValueError`) if a side is invalid.
    """
    for axis, size in zip(("height", "width"), input_shape[:2]):
        if not is_valid(size):
            nearest = " or ".join(str(s) for s in nearest_valid_sizes(size, is_valid))
            raise InputSizeError(
                f"{model_name} needs an input {axis} {requirement}; received "
                f"input_shape={input_shape}. Nearest valid sizes: {nearest}. "
                "Resize or crop the images, or pick one of those sizes.",
                input_shape,
                is_valid,
                requirement,
                model_name,
            )


def divisible_by(multiple):
    """Returns a size check for sizes that are a positive multiple of `multiple`."""
    return lambda size: size >= multiple and size % multiple == 0


def float32_output(x, activation=None):
    """Ends a network in float32, whatever the dtype policy.

    Under `mixed_float16` / `mixed_bfloat16` the layers compute in half
    precision; losses and metrics must see float32 values. The layer is named
    `logits` when no activation is applied, else `outputs`.
    """
    name = "logits" if activation is None else "outputs"
    return layers.Activation(activation or "linear", dtype="float32", name=name)(x)


def bilinear_upsampling_kernel(factor, channels):
    """Kernel for a `Conv2DTranspose` that upsamples by bilinear interpolation.

    With `kernel_size=2 * factor`, `strides=factor` and `padding="same"`, a
    transposed convolution with this kernel equals bilinear resizing with
    half-pixel centres (away from the borders), as in the FCN paper's
    "deconvolution" layers, which start from bilinear interpolation and are
    then learned.

    Returns:
        float32 array of shape `(2 * factor, 2 * factor, channels, channels)`
        that maps channel `c` to channel `c` only.
    """
    size = 2 * factor
    center = factor - 0.5
    taps = 1.0 - np.abs(np.arange(size) - center) / factor
    kernel_2d = np.outer(taps, taps).astype("float32")
    kernel = np.zeros((size, size, channels, channels), dtype="float32")
    for channel in range(channels):
        kernel[:, :, channel, channel] = kernel_2d
    return kernel


def bilinear_upsample(x, factor, name):
    """Learnable `Conv2DTranspose` upsampling by `factor`, set to bilinear.

    The kernel is assigned after the layer is built, so the saved config uses
    only built-in initialisers and reloads without custom objects.
    """
    channels = x.shape[-1]
    layer = layers.Conv2DTranspose(
        channels,
        kernel_size=2 * factor,
        strides=factor,
        padding="same",
        use_bias=False,
        name=name,
    )
    y = layer(x)
    layer.kernel.assign(bilinear_upsampling_kernel(factor, channels))
    return y


def crop_to_match(skip, target, name):
    """Centre-crops `skip` to the spatial size of `target` (U-Net copy-and-crop)."""
    dh = skip.shape[1] - target.shape[1]
    dw = skip.shape[2] - target.shape[2]
    if dh == 0 and dw == 0:
        return skip
    if dh < 0 or dw < 0:
        raise ValueError(
            f"Cannot crop a skip connection of shape {skip.shape} to {target.shape}."
        )
    cropping = ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2))
    return layers.Cropping2D(cropping, name=name)(skip)


def unet_double_conv(x, filters, padding, batch_norm, name):
    """Two 3x3 convolutions with ReLU (and batch norm when asked): a U-Net level."""
    for index in (1, 2):
        x = layers.Conv2D(
            filters,
            3,
            padding=padding,
            use_bias=not batch_norm,
            kernel_initializer="he_normal",
            name=f"{name}_conv{index}",
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{index}")(x)
        x = layers.ReLU(name=f"{name}_relu{index}")(x)
    return x


def pix2pix_downsample(x, filters, *, norm, name):
    """4x4 conv (stride 2) -> [norm] -> LeakyReLU(0.2): a pix2pix encoder block."""
    x = _pix2pix_conv(layers.Conv2D, x, filters, 4, norm, f"{name}_conv")
    x = normalization(norm, name=f"{name}_norm")(x) if norm != "none" else x
    return layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def pix2pix_upsample(x, filters, *, norm="batch", dropout=0.0, kernel_size=4, name):
    """Transposed conv (stride 2) -> norm -> [dropout] -> ReLU: a decoder block.

    The TensorFlow segmentation tutorial uses this block with `kernel_size=3`.
    """
    x = _pix2pix_conv(
        layers.Conv2DTranspose, x, filters, kernel_size, norm, f"{name}_convtranspose"
    )
    x = normalization(norm, name=f"{name}_norm")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _pix2pix_conv(layer_class, x, filters, kernel_size, norm, name):
    # Biases only where no batch norm follows (its offset does their job).
    return layer_class(
        filters,
        kernel_size,
        strides=2,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(0.0, PIX2PIX_INIT_STDDEV),
        use_bias=norm == "instance",
        name=name,
    )(x)


def normalization(norm, name):
    """Returns a batch or instance normalisation layer.

    Instance normalisation is `GroupNormalization(groups=-1)` (one group per
    channel), a built-in layer, so models reload without custom objects.
    """
    if norm == "batch":
        return layers.BatchNormalization(name=name)
    return layers.GroupNormalization(groups=-1, name=name)
