"""Fully convolutional networks: FCN-32s, FCN-16s and FCN-8s."""

import keras
from keras import layers

from tfseg.models import blocks
from tfseg.models import encoders

FCN_VARIANTS = {"32s": 0, "16s": 1, "8s": 2}


def build_fcn(
    input_shape=None,
    num_classes=3,
    variant="8s",
    encoder="vgg16",
    *,
    fc_width=4096,
    dropout=0.5,
    encoder_weights=None,
    freeze_encoder=False,
    alpha=1.0,
    name=None,
):
    """Builds an FCN-32s, FCN-16s or FCN-8s segmentation network.

    Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic
    Segmentation", CVPR 2015 (https://arxiv.org/abs/1411.4038). The VGG16
    classifier becomes convolutions (fc6: 7x7 with `fc_width` filters, fc7:
    1x1), a 1x1 "score" layer predicts class logits at stride 32, and learned
    `Conv2DTranspose` layers, initialised to bilinear interpolation and
    without bias, upsample them. FCN-16s adds the scores of pool4 (stride 16)
    after a 2x upsampling, FCN-8s also those of pool3 (stride 8); the new
    score layers start at zero, as in the paper, so a 16s/8s net starts out
    computing what its coarser parent computes.

    With VGG16, 3 classes and `fc_width=4096` the parameter counts are
    134,309,699 (32s), 134,283,734 (16s) and 134,277,737 (8s). With another
    encoder the variant names the number of skip fusions (0, 1 or 2) below
    that encoder's deepest stride.

    Args:
        input_shape: `(height, width, channels)`, sides divisible by 32 (by
            16 with the `unet` encoder). Defaults to `(128, 128, 3)`.
        num_classes: number of output classes. Defaults to `3`.
        variant: `"32s"`, `"16s"` or `"8s"`. Defaults to `"8s"`.
        encoder: one of `tfseg.models.list_encoders()`. Defaults to `"vgg16"`.
        fc_width: filters of fc6 and fc7. Defaults to `4096`.
        dropout: dropout rate after fc6 and fc7. Defaults to `0.5`.
        encoder_weights: `None`, `"imagenet"` or a weights file path.
            Defaults to `None`.
        freeze_encoder: keep the encoder's weights fixed. Defaults to `False`.
        alpha: MobileNetV2 width multiplier. Defaults to `1.0`.
        name: model name. Defaults to `"fcn{variant}"`, plus the encoder name
            when it is not VGG16.

    Returns:
        A `keras.Model` mapping images in 0..255, `(batch, H, W, C)`, to
        float32 logits `(batch, H, W, num_classes)`.

    Raises:
        ValueError: for an unknown variant or encoder, a bad size (the
            message names the nearest valid sizes) or bad weights.

    Example:

    >>> model = build_fcn((128, 128, 3), variant="16s", fc_width=256)
    >>> model.output_shape
    (None, 128, 128, 3)
    """
    input_shape = blocks.normalize_input_shape(input_shape)
    blocks.check_positive_int("num_classes", num_classes)
    blocks.check_choice("variant", variant, FCN_VARIANTS)
    blocks.check_positive_int("fc_width", fc_width)
    blocks.check_rate("dropout", dropout)
    default_name = f"fcn{variant}" + ("" if encoder == "vgg16" else f"_{encoder}")
    encoders.check_encoder_arguments(
        encoder, input_shape, default_name, weights=encoder_weights, alpha=alpha
    )

    inputs = keras.Input(input_shape, name="image")
    features = encoders.build_encoder(
        encoder, inputs, weights=encoder_weights, freeze=freeze_encoder, alpha=alpha
    )
    strides = sorted(features, reverse=True)  # VGG16: 32, 16, 8, 4, 2
    stride = strides[0]
    # The classifier as convolutions at the deepest stride: (H/32, W/32, 512)
    # -> fc6 -> fc7 -> (H/32, W/32, fc_width) -> score -> (.., num_classes).
    x = layers.Conv2D(fc_width, 7, padding="same", activation="relu", name="fc6")(
        features[stride]
    )
    x = layers.Dropout(dropout, name="fc6_dropout")(x)
    x = layers.Conv2D(fc_width, 1, activation="relu", name="fc7")(x)
    x = layers.Dropout(dropout, name="fc7_dropout")(x)
    x = layers.Conv2D(num_classes, 1, name=f"score_stride{stride}")(x)
    # Skip fusions: upsample 2x, add the zero-initialised scores of the
    # finer feature map (pool4 at H/16, then pool3 at H/8).
    for skip_stride in strides[1 : 1 + FCN_VARIANTS[variant]]:
        x = blocks.bilinear_upsample(
            x, stride // skip_stride, name=f"upscore_stride{skip_stride}"
        )
        skip_score = layers.Conv2D(
            num_classes,
            1,
            kernel_initializer="zeros",
            name=f"score_stride{skip_stride}",
        )(features[skip_stride])
        x = layers.Add(name=f"fuse_stride{skip_stride}")([x, skip_score])
        stride = skip_stride
    # (H/stride, W/stride, num_classes) -> (H, W, num_classes)
    x = blocks.bilinear_upsample(x, stride, name="upscore_final")
    outputs = blocks.float32_output(x)
    return keras.Model(inputs, outputs, name=name or default_name)
