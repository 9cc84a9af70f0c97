"""U-Net, padded and the original valid-convolution network, with overlap-tile
inference for the latter."""

import math

import keras
import numpy as np
from keras import layers

from tfseg.models import blocks
from tfseg.models import encoders

# Decoder widths (deepest stage first) for the pretrained encoders, whose
# deep features are much wider than the plain U-Net's.
APPLICATION_DECODER_FILTERS = (256, 128, 64, 32, 16)
# The plain encoder's shape: its first level's filters and its poolings.
BASE_FILTERS = 64
DEPTH = 4


def build_unet(
    input_shape=None,
    num_classes=3,
    encoder="unet",
    *,
    padding="same",
    base_filters=BASE_FILTERS,
    depth=DEPTH,
    batch_norm=False,
    decoder_filters=None,
    encoder_weights=None,
    freeze_encoder=False,
    alpha=1.0,
    name=None,
):
    """Builds a U-Net: an encoder, then up-convolutions with skip concatenation.

    Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for
    Biomedical Image Segmentation", MICCAI 2015
    (https://arxiv.org/abs/1505.04597). Each decoder stage doubles the
    resolution with a 2x2 up-convolution, concatenates the encoder's feature
    map of the same stride and applies two 3x3 convolutions with ReLU; a 1x1
    convolution gives the logits.

    - `padding="same"` (default): output as large as the input; sides
      divisible by `2**depth`. RGB in, 3 classes: 31,031,875 parameters.
    - `padding="valid"`: the original network with unpadded convolutions and
      copy-and-crop skips. The output is `12 * 2**depth - 8` px smaller
      (572 -> 388 for depth 4; 1 channel in, 2 classes: 31,030,658
      parameters). `valid_unet_sizes()` lists the sides it takes, and
      `predict_tiled` segments images of any size with it.

    Any encoder of `tfseg.models.list_encoders()` can replace the plain one;
    the decoder then continues past the encoder's finest stride up to full
    resolution.

    Args:
        input_shape: `(height, width, channels)`. Defaults to `(128, 128, 3)`
            with `padding="same"` and `(572, 572, 3)` with `"valid"`.
        num_classes: number of output classes. Defaults to `3`.
        encoder: one of `tfseg.models.list_encoders()`. Defaults to `"unet"`.
        padding: `"same"` or `"valid"` (plain encoder only). Defaults to
            `"same"`.
        base_filters: filters of the first level (plain encoder only: a
            pretrained encoder has its own widths). Defaults to `64`.
        depth: number of 2x2 poolings (plain encoder only: a pretrained
            encoder downsamples 5 times). Defaults to `4`.
        batch_norm: add batch norm after every 3x3 convolution; not in the
            paper, but it trains faster from scratch. Defaults to `False`.
        decoder_filters: filters per decoder stage, deepest first. Defaults
            to `base_filters * stride` for the plain encoder, else
            `(256, 128, 64, 32, 16)`.
        encoder_weights: `None`, `"imagenet"` or a weights file path for a
            pretrained encoder. Defaults to `None`.
        freeze_encoder: keep the encoder's weights fixed. Defaults to `False`.
        alpha: MobileNetV2 width multiplier. Defaults to `1.0`.
        name: model name. Defaults to `"unet"`, plus the encoder's name when
            it is not the plain one and `_valid` for valid padding.

    Returns:
        A `keras.Model` from images in 0..255, `(batch, H, W, C)`, to float32
        logits `(batch, H', W', num_classes)` (`H' = H` with same padding).

    Raises:
        ValueError: for a size the network cannot take (naming the nearest
            valid sizes), an unknown encoder or padding, bad weights, or
            `depth`/`base_filters` with a pretrained encoder (they would be
            ignored).

    Example:

    >>> model = build_unet((128, 128, 3), base_filters=16)
    >>> model.output_shape
    (None, 128, 128, 3)
    """
    blocks.check_choice("padding", padding, ("same", "valid"))
    default_shape = (572, 572, 3) if padding == "valid" else (128, 128, 3)
    input_shape = blocks.normalize_input_shape(input_shape, default=default_shape)
    blocks.check_positive_int("num_classes", num_classes)
    blocks.check_positive_int("base_filters", base_filters)
    default_name = "unet" + ("" if encoder == "unet" else f"_{encoder}")
    default_name += "_valid" if padding == "valid" else ""
    encoders.check_encoder_arguments(
        encoder,
        input_shape,
        default_name,
        weights=encoder_weights,
        alpha=alpha,
        depth=depth,
        padding=padding,
    )
    _check_plain_encoder_arguments(encoder, depth=depth, base_filters=base_filters)
    stages = _decoder_strides(encoder, depth)
    if decoder_filters is None:
        if encoder == "unet":
            decoder_filters = tuple(base_filters * stride for stride in stages)
        else:
            decoder_filters = APPLICATION_DECODER_FILTERS[: len(stages)]
    blocks.check_decoder_filters(decoder_filters, len(stages))

    inputs = keras.Input(input_shape, name="image")
    features = encoders.build_encoder(
        encoder,
        inputs,
        weights=encoder_weights,
        freeze=freeze_encoder,
        alpha=alpha,
        base_filters=base_filters,
        depth=depth,
        padding=padding,
        batch_norm=batch_norm,
    )
    # Plain encoder, depth 4, 128 px: bottleneck (8, 8, 1024); each stage
    # (16, 16, 512) -> (32, 32, 256) -> (64, 64, 128) -> (128, 128, 64).
    x = features[max(features)]
    for stride, filters in zip(stages, decoder_filters):
        name_prefix = f"decoder_stride{stride}"
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"{name_prefix}_upconv")(
            x
        )
        if stride in features:
            skip = blocks.crop_to_match(features[stride], x, name=f"{name_prefix}_crop")
            x = layers.Concatenate(name=f"{name_prefix}_concat")([skip, x])
        x = blocks.unet_double_conv(x, filters, padding, batch_norm, name_prefix)
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    outputs = blocks.float32_output(x)
    return keras.Model(inputs, outputs, name=name or default_name)


def _check_plain_encoder_arguments(encoder, **given):
    """Raises `ValueError` for arguments of the plain encoder (`depth`,
    `base_filters`) changed from their defaults with another encoder, which
    would ignore them; names the arguments that apply."""
    defaults = {"depth": DEPTH, "base_filters": BASE_FILTERS}
    changed = [f"{k}={v!r}" for k, v in given.items() if v != defaults[k]]
    if encoder == "unet" or not changed:
        return
    applying = ["decoder_filters", "batch_norm (the decoder's)", "encoder_weights"]
    applying += ["freeze_encoder"] + ["alpha"] * (encoder == "mobilenet_v2")
    raise ValueError(
        f"{' and '.join(changed)} shape the plain `unet` encoder; the "
        f"{encoder!r} encoder has its own widths and depth (5 downsamplings), "
        f"so they would be ignored. With encoder={encoder!r}, these apply: "
        f"{', '.join(applying)}. Drop {', '.join(c.split('=')[0] for c in changed)}, "
        "or use encoder='unet'."
    )


def _decoder_strides(encoder, depth):
    """Strides the decoder produces, deepest first, down to 1."""
    deepest = 2**depth if encoder == "unet" else 32
    return [deepest // 2**k for k in range(1, int(math.log2(deepest)) + 1)]


def predict_tiled(model, image, batch_size=8):
    """Segments an image of any size with a valid-padding U-Net (overlap-tile).

    The strategy of the U-Net paper (Fig. 2): the image is mirror-padded
    (reflect) by the network's margin on every side, cut into overlapping
    input tiles whose valid outputs cover the image, and the outputs are
    stitched together. Tiles advance by a multiple of `2**depth` px, so each
    tile's pooling grid lines up with that of one forward pass over the whole
    padded image and the stitched result equals that pass (up to float
    rounding): no seams.

    Args:
        model: a model from `build_unet(padding="valid")`, or any model whose
            output is smaller than its input by a valid U-Net's margin.
        image: array `(height, width, channels)` with values in 0..255.
        batch_size: tiles per forward pass. Defaults to `8`.

    Returns:
        float32 numpy array of logits `(height, width, num_classes)`.

    Raises:
        ValueError: if `model` is not a valid-padding U-Net or `image` does
            not match its channels.

    Example:

    >>> model = build_unet((204, 204, 3), padding="valid", base_filters=4)
    >>> predict_tiled(model, np.zeros((50, 70, 3))).shape
    (50, 70, 3)
    """
    tile_in = model.input_shape[1]
    tile_out = model.output_shape[1]
    margin = tile_in - tile_out
    depth = math.log2((margin + 8) / 12) if margin > 0 else 0
    if (
        model.input_shape[1:3] != (tile_in, tile_in)
        or model.output_shape[1:3] != (tile_out, tile_out)
        or depth < 1
        or depth != int(depth)
    ):
        raise ValueError(
            "predict_tiled needs a square valid-padding U-Net (output smaller "
            "than its input by 12 * 2**depth - 8 px); received a model with "
            f"input shape {model.input_shape} and output shape {model.output_shape}."
        )
    image = np.asarray(image, dtype="float32")
    if image.ndim != 3 or image.shape[-1] != model.input_shape[-1]:
        raise ValueError(
            f"`image` must have shape (height, width, {model.input_shape[-1]}); "
            f"received shape {image.shape}."
        )
    # Tile origins are multiples of `step`, itself a multiple of 2**depth;
    # the last tiles may reach past the image, into more mirrored pixels.
    period = 2 ** int(depth)
    step = tile_out - tile_out % period
    if step == 0:
        raise ValueError(
            f"Tiles of {tile_in} px give {tile_out} px outputs, fewer than the "
            f"{period} px period of the network's pooling grid, so aligned tiles "
            "cannot cover an image. Build the model with a larger input, e.g. "
            f"input_shape=({tile_in + period}, {tile_in + period}, "
            f"{model.input_shape[-1]})."
        )
    height, width = image.shape[:2]
    rows = range(0, height, step)
    cols = range(0, width, step)
    extra_h = rows[-1] + tile_out - height
    extra_w = cols[-1] + tile_out - width
    half = margin // 2
    padded = np.pad(
        image, ((half, half + extra_h), (half, half + extra_w), (0, 0)), mode="reflect"
    )
    origins = [(r, c) for r in rows for c in cols]
    logits = np.zeros(
        (height + extra_h, width + extra_w, model.output_shape[-1]), "float32"
    )
    for start in range(0, len(origins), batch_size):
        batch_origins = origins[start : start + batch_size]
        tiles = np.stack(
            [padded[r : r + tile_in, c : c + tile_in] for r, c in batch_origins]
        )
        outputs = keras.ops.convert_to_numpy(model(tiles, training=False))
        for (r, c), output in zip(batch_origins, outputs):
            logits[r : r + tile_out, c : c + tile_out] = output
    return logits[:height, :width]
