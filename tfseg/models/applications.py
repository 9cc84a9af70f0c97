"""The `keras.applications` networks tfseg uses as encoders, and the layers
each is tapped at: pure Python (no Keras), so their names are listed
without loading Keras (`tfseg.models.registry`). `tfseg.models.encoders`
builds them; the tap names are a contract tested against Keras.
"""

import dataclasses

IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)


@dataclasses.dataclass(frozen=True)
class ApplicationEncoder:
    """How to tap one `keras.applications` network.

    Attributes:
        constructor: name of the builder in `keras.applications`.
        taps: `{stride: layer name}`, the deepest layer at each stride.
        bgr_first_conv: name of the first convolution when the weights
            expect BGR input, else `None`.
        scale: input scale of the weight-free `Rescaling` layer.
        offset: input offset (per channel or scalar) of that layer.
    """

    constructor: str
    taps: dict
    bgr_first_conv: str = None
    scale: float = 1.0
    offset: tuple = tuple(-m for m in IMAGENET_MEAN_RGB)


APPLICATION_ENCODERS = {
    "vgg16": ApplicationEncoder(
        constructor="VGG16",
        # Stage outputs after pooling: FCN taps pool3, pool4 and pool5.
        taps={
            2: "block1_pool",
            4: "block2_pool",
            8: "block3_pool",
            16: "block4_pool",
            32: "block5_pool",
        },
        bgr_first_conv="block1_conv1",
    ),
    "resnet50": ApplicationEncoder(
        constructor="ResNet50",
        taps={
            2: "conv1_relu",
            4: "conv2_block3_out",
            8: "conv3_block4_out",
            16: "conv4_block6_out",
            32: "conv5_block3_out",
        },
        bgr_first_conv="conv1_conv",
    ),
    "mobilenet_v2": ApplicationEncoder(
        constructor="MobileNetV2",
        # The TensorFlow segmentation tutorial's taps.
        taps={
            2: "block_1_expand_relu",
            4: "block_3_expand_relu",
            8: "block_6_expand_relu",
            16: "block_13_expand_relu",
            32: "block_16_project",
        },
        scale=1.0 / 127.5,
        offset=-1.0,
    ),
}

ENCODER_NAMES = ("unet",) + tuple(APPLICATION_ENCODERS)


def list_encoders():
    """Returns the names accepted by the `encoder` argument of the builders."""
    return list(ENCODER_NAMES)
