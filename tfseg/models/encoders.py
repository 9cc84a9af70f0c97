"""Encoders (backbones) that return feature maps keyed by stride.

Every encoder takes the model's raw input (float images in 0..255), applies
the input normalisation its weights expect with a weight-free layer, and
returns `{stride: feature_map}`, where a feature map of stride `s` has
`1/s` of the input's height and width. Decoders choose skips by stride and
never look at layer names: the layer names tapped from `keras.applications`
live in `tfseg.models.applications.APPLICATION_ENCODERS` (pure Python, so the
command line lists them without Keras), and are tested against Keras.

| encoder        | strides           | input normalisation                 |
| -------------- | ----------------- | ----------------------------------- |
| `unet`         | 1, 2, ..., 2**depth | x / 255                           |
| `vgg16`        | 2, 4, 8, 16, 32   | x - ImageNet mean (Caffe style)     |
| `resnet50`     | 2, 4, 8, 16, 32   | x - ImageNet mean (Caffe style)     |
| `mobilenet_v2` | 2, 4, 8, 16, 32   | x / 127.5 - 1                       |

The Caffe-style networks were trained on BGR images. Instead of a channel
flip layer (a `Lambda`, which does not reload safely), the pretrained first
convolution's kernel is flipped along its input-channel axis, so the encoder
takes RGB and computes exactly what the original network computes on BGR.
"""

import functools
import os
import warnings

import keras
from keras import layers

from tfseg.models import blocks
from tfseg.models.applications import APPLICATION_ENCODERS
from tfseg.models.applications import ENCODER_NAMES

MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def is_valid_unet_size(size, depth=4, padding="same"):
    """Whether a U-Net of `depth` poolings takes inputs of side `size`.

    With `padding="same"` the side must be divisible by `2**depth`. With
    `padding="valid"` (the original network) every 2x2 pooling must see an
    even side and every feature map must keep a positive side; for depth 4
    that is `size >= 188 and (size - 188) % 16 == 0`.
    """
    if padding == "same":
        return size >= 2**depth and size % 2**depth == 0
    for _ in range(depth):
        size -= 4  # two 3x3 valid convolutions
        if size <= 0 or size % 2:
            return False
        size //= 2
    size -= 4  # bottleneck
    for _ in range(depth):
        if size <= 0:
            return False
        size = 2 * size - 4  # up-convolution, then two valid convolutions
    return size > 0


def valid_unet_output_size(size, depth=4):
    """Output side of a valid-padding U-Net for an input side `size`.

    Each of the `depth` encoder levels, the bottleneck and each decoder level
    loses 4 px (two 3x3 valid convolutions) at its own resolution, so the
    output is `size - (12 * 2**depth - 8)`: 572 -> 388 for depth 4.

    Raises:
        ValueError: if `size` is not a valid input side; the message names
            the nearest valid sides.
    """
    blocks.check_input_size(
        (size, size),
        lambda s: is_valid_unet_size(s, depth, "valid"),
        _unet_requirement(depth, "valid"),
        f"A valid-padding U-Net of depth {depth}",
    )
    return size - valid_unet_margin(depth)


def valid_unet_margin(depth=4):
    """Pixels a valid-padding U-Net loses across a side: 184 for depth 4."""
    return 12 * 2**depth - 8


def valid_unet_sizes(max_size=1024, depth=4):
    """Lists the valid input sides of a valid-padding U-Net up to `max_size`.

    Example:

    >>> valid_unet_sizes(260)
    [188, 204, 220, 236, 252]
    """
    return [s for s in range(1, max_size + 1) if is_valid_unet_size(s, depth, "valid")]


def _unet_requirement(depth, padding):
    if padding == "same":
        return f"divisible by {2**depth} (2**depth)"
    smallest = valid_unet_sizes(4096, depth)[0]
    return (
        f"of at least {smallest} with (size - {smallest}) divisible by {2**depth}; "
        f"the output is {valid_unet_margin(depth)} px smaller"
    )


def check_encoder_arguments(
    encoder,
    input_shape,
    model_name,
    *,
    weights=None,
    alpha=1.0,
    depth=4,
    padding="same",
):
    """Validates every encoder argument before any layer is built.

    Raises:
        ValueError: for an unknown encoder, weights the encoder cannot load,
            a missing weights file, an `alpha` that does not apply, or an
            input size the encoder cannot take (naming the nearest valid ones).
    """
    blocks.check_choice("encoder", encoder, ENCODER_NAMES)
    if encoder == "unet":
        blocks.check_choice("padding", padding, ("same", "valid"))
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 6:
            raise ValueError(
                f"`depth` must be an integer from 1 to 6; received depth={depth!r}."
            )
        if weights is not None:
            raise ValueError(
                "The `unet` encoder is trained from scratch and has no pretrained "
                f"weights; received encoder_weights={weights!r}. Pass "
                "encoder_weights=None, or pick a pretrained encoder: "
                f"{sorted(APPLICATION_ENCODERS)}."
            )
        is_valid = functools.partial(is_valid_unet_size, depth=depth, padding=padding)
        requirement = _unet_requirement(depth, padding)
    else:
        if padding != "same":
            raise ValueError(
                "`padding='valid'` (the original U-Net) needs the `unet` encoder; "
                f"received encoder={encoder!r}."
            )
        is_valid = blocks.divisible_by(32)
        requirement = "divisible by 32 (the encoder downsamples 5 times)"
        _check_weights(encoder, weights, input_shape)
    if encoder == "mobilenet_v2":
        if alpha not in MOBILENET_V2_ALPHAS:
            raise ValueError(
                f"MobileNetV2 `alpha` must be one of {MOBILENET_V2_ALPHAS}; "
                f"received alpha={alpha!r}."
            )
    elif alpha != 1.0:
        raise ValueError(
            f"`alpha` (width multiplier) applies only to the mobilenet_v2 "
            f"encoder; received alpha={alpha!r} with encoder={encoder!r}."
        )
    blocks.check_input_size(
        input_shape, is_valid, requirement, f"{model_name} ({encoder} encoder)"
    )


def _check_weights(encoder, weights, input_shape):
    if weights is None or weights == "imagenet":
        pass
    elif isinstance(weights, (str, os.PathLike)):
        if not os.path.isfile(weights):
            raise ValueError(
                f"Encoder weights file not found: {os.fspath(weights)!r}. Pass the "
                f"path of a Keras weights file for {encoder} (as saved by "
                "keras.applications), 'imagenet', or None."
            )
    else:
        raise ValueError(
            "`encoder_weights` must be None (random initialisation), 'imagenet', "
            f"or the path to a weights file; received {weights!r}."
        )
    if weights is not None and input_shape[-1] != 3:
        raise ValueError(
            f"Pretrained {encoder} weights need RGB input (3 channels); received "
            f"input_shape={input_shape}. Use encoder_weights=None for other inputs."
        )


def build_encoder(
    encoder,
    inputs,
    *,
    weights=None,
    freeze=False,
    alpha=1.0,
    base_filters=64,
    depth=4,
    padding="same",
    batch_norm=False,
):
    """Builds an encoder on `inputs` and returns its feature maps by stride.

    Call `check_encoder_arguments` first: this function assumes valid
    arguments.

    Args:
        encoder: one of `list_encoders()`.
        inputs: Keras tensor of images in 0..255, `(batch, H, W, C)`.
        weights: `None`, `"imagenet"` or a weights file path (application
            encoders only). Defaults to `None`.
        freeze: make the encoder's layers non-trainable (batch norm layers
            then run in inference mode). Defaults to `False`.
        alpha: MobileNetV2 width multiplier. Defaults to `1.0`.
        base_filters: filters of the first `unet` level. Defaults to `64`.
        depth: poolings of the `unet` encoder. Defaults to `4`.
        padding: `"same"` or `"valid"` convolutions (`unet` only). Defaults
            to `"same"`.
        batch_norm: batch norm after each `unet` convolution. Defaults to
            `False` (the original network has none).

    Returns:
        dict `{stride: Keras tensor}`.
    """
    if encoder == "unet":
        features = _unet_encoder(inputs, base_filters, depth, padding, batch_norm)
    else:
        features = _application_encoder(encoder, inputs, weights, alpha)
    if freeze:
        # The layers on the paths from the input to the feature maps.
        for layer in keras.Model(inputs, list(features.values())).layers:
            layer.trainable = False
    return features


def _unet_encoder(x, base_filters, depth, padding, batch_norm):
    # (H, W, C) -> x / 255 -> level k (k = 0..depth-1): two 3x3 convs with
    # base_filters * 2**k filters at stride 2**k, then 2x2 max pooling;
    # bottleneck: two convs with base_filters * 2**depth at stride 2**depth.
    x = layers.Rescaling(1.0 / 255.0, dtype="float32", name="encoder_rescaling")(x)
    features = {}
    for level in range(depth):
        x = blocks.unet_double_conv(
            x, base_filters * 2**level, padding, batch_norm, f"encoder_block{level + 1}"
        )
        features[2**level] = x
        x = layers.MaxPooling2D(2, name=f"encoder_block{level + 1}_pool")(x)
    x = blocks.unet_double_conv(
        x, base_filters * 2**depth, padding, batch_norm, "bottleneck"
    )
    features[2**depth] = x
    return features


def _application_encoder(encoder, inputs, weights, alpha):
    spec = APPLICATION_ENCODERS[encoder]
    offset = spec.offset
    if isinstance(offset, tuple) and inputs.shape[-1] != len(offset):
        offset = sum(offset) / len(offset)  # not RGB: the mean over channels
    x = layers.Rescaling(
        spec.scale, offset=offset, dtype="float32", name=f"{encoder}_rescaling"
    )(inputs)
    kwargs = {"alpha": alpha} if encoder == "mobilenet_v2" else {}
    constructor = getattr(keras.applications, spec.constructor)
    with warnings.catch_warnings():
        # MobileNetV2 warns that sizes other than 96..224 load the 224 px
        # weights; without the classification top the weights are the same
        # at every size, so the warning does not apply.
        warnings.filterwarnings("ignore", message=".*input_shape.*is undefined or non")
        try:
            network = constructor(
                include_top=False, weights=weights, input_tensor=x, **kwargs
            )
        except Exception as error:  # re-raised below with guidance
            if weights != "imagenet" or isinstance(error, ValueError):
                raise
            raise OSError(
                f"Could not load the ImageNet weights of {encoder}: {error}\n"
                "Keras looks for its weight files in $KERAS_HOME/models/ "
                "(default ~/.keras/models/) before downloading them. Copy the "
                "file there, pass encoder_weights='/path/to/weights.h5', or "
                "train from scratch with encoder_weights=None."
            ) from error
    if weights is not None and spec.bgr_first_conv:
        conv = network.get_layer(spec.bgr_first_conv)
        conv.kernel.assign(keras.ops.flip(conv.kernel, axis=2))
    return {
        stride: network.get_layer(name).output for stride, name in spec.taps.items()
    }
