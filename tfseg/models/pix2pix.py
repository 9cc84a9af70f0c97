"""The Pix2Pix U-Net generator, as a segmentation network or an image translator."""

import keras
from keras import layers

from tfseg.models import blocks

PIX2PIX_MAX_DOWNSAMPLES = 8  # the paper's 256 px generator: 256 px -> 1 px


def build_pix2pix(
    input_shape=None,
    num_classes=3,
    *,
    base_filters=64,
    num_downsamples=None,
    norm="batch",
    dropout=0.5,
    output_activation=None,
    name=None,
):
    """Builds the U-Net generator of Pix2Pix.

    Isola, Zhu, Zhou and Efros, "Image-to-Image Translation with Conditional
    Adversarial Networks", CVPR 2017 (https://arxiv.org/abs/1611.07004).
    Encoder: 4x4 convolutions with stride 2, normalisation (none on the
    first block), LeakyReLU 0.2; filters `base_filters * (1, 2, 4, 8, 8, ...)`.
    Decoder: 4x4 transposed convolutions with stride 2, normalisation,
    dropout 0.5 on the first three blocks, ReLU, each followed by
    concatenation with the encoder block of the same size; a last transposed
    convolution gives `num_classes` outputs at full resolution.

    The depth follows the input size: by default the encoder halves the input
    as often as both sides allow, at most 8 times (down to 1x1 for square
    powers of two) (8 down / 7 up at 256 px: 54,425,859
    parameters with 3 outputs; 7 / 6 at 128 px: 41,838,851).

    With `norm="instance"` (`GroupNormalization` with one group per channel)
    the convolutions get biases and the innermost encoder block is left
    unnormalised, as in the authors' code: normalising a 1x1 map per instance
    would zero it.

    Args:
        input_shape: `(height, width, channels)`, sides divisible by
            `2**num_downsamples`. Defaults to `(128, 128, 3)`.
        num_classes: output channels (classes, or image channels for
            translation). Defaults to `3`.
        base_filters: filters of the first block. Defaults to `64`.
        num_downsamples: encoder blocks. Defaults to `None`: as many as both
            sides can be halved, at most 8.
        norm: `"batch"` or `"instance"`. Defaults to `"batch"`.
        dropout: dropout rate of the first three decoder blocks. Defaults to
            `0.5`.
        output_activation: `None` for logits (segmentation) or a Keras
            activation name such as `"tanh"` (image translation). Defaults
            to `None`.
        name: model name. Defaults to `"pix2pix"`.

    Returns:
        A `keras.Model` from images in 0..255, `(batch, H, W, C)`, to float32
        outputs `(batch, H, W, num_classes)`.

    Raises:
        ValueError: for an unknown `norm`, a size not divisible by
            `2**num_downsamples` (naming the nearest valid sizes) or a bad
            count.

    Example:

    >>> model = build_pix2pix((128, 128, 3), base_filters=16)
    >>> model.output_shape
    (None, 128, 128, 3)
    """
    input_shape = blocks.normalize_input_shape(input_shape)
    blocks.check_positive_int("num_classes", num_classes)
    blocks.check_positive_int("base_filters", base_filters)
    blocks.check_choice("norm", norm, ("batch", "instance"))
    blocks.check_rate("dropout", dropout)
    if output_activation is not None:
        keras.activations.get(output_activation)  # raises for an unknown name
    if num_downsamples is None:
        # As many halvings as both sides allow: 128 -> 7 (a 1x1 bottleneck),
        # 96 x 160 -> 5 (3 x 5), at most 8.
        num_downsamples = min(
            PIX2PIX_MAX_DOWNSAMPLES, *(_halvings(side) for side in input_shape[:2])
        )
    blocks.check_positive_int("num_downsamples", num_downsamples)
    multiple = 2**num_downsamples
    blocks.check_input_size(
        input_shape,
        blocks.divisible_by(multiple),
        f"divisible by {multiple} (2**num_downsamples, {num_downsamples} blocks)",
        "The pix2pix generator",
    )

    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, dtype="float32", name="rescaling")(
        inputs
    )
    # 256 px: (128, 128, 64) -> (64, 64, 128) -> (32, 32, 256) -> (16, 16, 512)
    # -> (8, 8, 512) -> (4, 4, 512) -> (2, 2, 512) -> (1, 1, 512)
    filters = [base_filters * min(2**level, 8) for level in range(num_downsamples)]
    skips = []
    for level, level_filters in enumerate(filters):
        innermost = level == num_downsamples - 1
        if level == 0 or (innermost and norm == "instance"):
            block_norm = "none"
        else:
            block_norm = norm
        x = blocks.pix2pix_downsample(
            x, level_filters, norm=block_norm, name=f"down{level + 1}"
        )
        skips.append(x)
    # Back up, mirroring the encoder: (2, 2, 512 + 512) ... (128, 128, 64 + 64)
    for index, (level_filters, skip) in enumerate(
        zip(reversed(filters[:-1]), reversed(skips[:-1]))
    ):
        x = blocks.pix2pix_upsample(
            x,
            level_filters,
            norm=norm,
            dropout=dropout if index < 3 else 0.0,
            name=f"up{index + 1}",
        )
        x = layers.Concatenate(name=f"up{index + 1}_concat")([x, skip])
    x = layers.Conv2DTranspose(
        num_classes,
        4,
        strides=2,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(
            0.0, blocks.PIX2PIX_INIT_STDDEV
        ),
        name="classifier",
    )(x)
    outputs = blocks.float32_output(x, activation=output_activation)
    return keras.Model(inputs, outputs, name=name or "pix2pix")


def _halvings(side):
    """How many times `side` can be halved exactly (the power of 2 in it)."""
    count = 0
    while side % 2 == 0:
        side //= 2
        count += 1
    return count
