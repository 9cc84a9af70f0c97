"""The TensorFlow tutorial's MobileNetV2 U-Net, done right."""

import keras
from keras import layers

from tfseg.models import blocks
from tfseg.models import encoders


def build_mobilenet_unet(
    input_shape=None,
    num_classes=3,
    encoder="mobilenet_v2",
    *,
    alpha=1.0,
    decoder_filters=(512, 256, 128, 64),
    encoder_weights=None,
    freeze_encoder=False,
    name=None,
):
    """Builds the MobileNetV2 U-Net of the TensorFlow segmentation tutorial.

    The encoder is MobileNetV2 (Sandler et al. 2018,
    https://arxiv.org/abs/1801.04381) tapped at `block_1_expand_relu`,
    `block_3_expand_relu`, `block_6_expand_relu`, `block_13_expand_relu`
    (strides 2-16) and `block_16_project` (stride 32). The decoder is made
    of pix2pix upsample blocks (3x3 transposed convolution with stride 2,
    batch norm, ReLU) of 512, 256, 128 and 64 filters, each followed by
    concatenation with the encoder map of the same stride, and a last 3x3
    transposed convolution (stride 2) to the logits. Unlike the tutorial,
    inputs are scaled to [-1, 1] as MobileNetV2 was trained (the tutorial
    feeds [0, 1]), every layer is created per call (the tutorial shares
    global layer objects between models) and nothing outside Keras is needed.

    At 128 px, `alpha=1.0`, 3 classes: 6,504,227 parameters, 4,660,323 of
    them trainable with `freeze_encoder=True`, as in the tutorial.

    Args:
        input_shape: `(height, width, channels)`, sides divisible by 32.
            Defaults to `(128, 128, 3)`.
        num_classes: number of output classes. Defaults to `3`.
        encoder: one of `tfseg.models.list_encoders()`. Defaults to
            `"mobilenet_v2"`.
        alpha: MobileNetV2 width multiplier, one of 0.35, 0.5, 0.75, 1.0,
            1.3, 1.4; other encoders take only `1.0`. Defaults to `1.0`.
        decoder_filters: filters of the upsample blocks, deepest first, one
            per encoder stride below the deepest. Defaults to
            `(512, 256, 128, 64)`.
        encoder_weights: `None`, `"imagenet"` (the tutorial's choice) or a
            weights file path. Defaults to `None`.
        freeze_encoder: keep the encoder's weights fixed, as the tutorial
            does. Defaults to `False`.
        name: model name. Defaults to `"mobilenet_unet"`, plus the encoder
            name when it is not MobileNetV2.

    Returns:
        A `keras.Model` from images in 0..255, `(batch, H, W, C)`, to float32
        logits `(batch, H, W, num_classes)`.

    Raises:
        ValueError: for a size not divisible by 32 (naming the nearest valid
            sizes), an unknown encoder, a bad `alpha` (or any `alpha` other
            than `1.0` with an encoder other than MobileNetV2) or bad weights.

    Example:

    >>> model = build_mobilenet_unet((128, 128, 3), alpha=0.35)
    >>> model.output_shape
    (None, 128, 128, 3)
    """
    input_shape = blocks.normalize_input_shape(input_shape)
    blocks.check_positive_int("num_classes", num_classes)
    default_name = "mobilenet_unet" + (
        "" if encoder == "mobilenet_v2" else f"_{encoder}"
    )
    encoders.check_encoder_arguments(
        encoder, input_shape, default_name, weights=encoder_weights, alpha=alpha
    )
    # Every encoder gives five strides: four decoder stages below the deepest.
    blocks.check_decoder_filters(decoder_filters, 4)

    inputs = keras.Input(input_shape, name="image")
    features = encoders.build_encoder(
        encoder,
        inputs,
        weights=encoder_weights,
        freeze=freeze_encoder,
        alpha=alpha,
    )
    strides = sorted(features, reverse=True)  # 32, 16, 8, 4, 2
    # 128 px: (4, 4, 320) -> (8, 8, 512 + 576) -> (16, 16, 256 + 192)
    # -> (32, 32, 128 + 144) -> (64, 64, 64 + 96) -> (128, 128, num_classes)
    x = features[strides[0]]
    for stride, filters in zip(strides[1:], decoder_filters):
        x = blocks.pix2pix_upsample(
            x, filters, norm="batch", kernel_size=3, name=f"decoder_stride{stride}"
        )
        x = layers.Concatenate(name=f"decoder_stride{stride}_concat")(
            [x, features[stride]]
        )
    x = layers.Conv2DTranspose(
        num_classes, 3, strides=strides[-1], padding="same", name="classifier"
    )(x)
    outputs = blocks.float32_output(x)
    return keras.Model(inputs, outputs, name=name or default_name)
