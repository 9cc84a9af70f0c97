"""Every error a user can cause names what was received and what is expected."""

import re

import numpy as np
import pytest

from tfseg.models import build_unet
from tfseg.models import create_model
from tfseg.models import model_arguments
from tfseg.models import predict_tiled
from tfseg.models import valid_unet_output_size

# (model name, arguments, exception, pattern the message must contain)
CASES = [
    (
        "unet",
        dict(input_shape=(100, 100, 3)),
        ValueError,
        "divisible by 16.*input_shape=\\(100, 100, 3\\)."
        "*Nearest valid sizes: 96 or 112",
    ),
    (
        "fcn8s",
        dict(input_shape=(128, 100, 3)),
        ValueError,
        "input width divisible by 32.*Nearest valid sizes: 96 or 128",
    ),
    (
        "mobilenet_unet",
        dict(input_shape=(20, 64, 3)),
        ValueError,
        "Nearest valid sizes: 32$|Nearest valid sizes: 32\\.",
    ),
    (
        "unet",
        dict(padding="valid", input_shape=(200, 200, 1)),
        ValueError,
        "at least 188 with \\(size - 188\\) divisible by 16."
        "*Nearest valid sizes: 188 or 204",
    ),
    (
        "pix2pix",
        dict(input_shape=(96, 96, 3), num_downsamples=6),
        ValueError,
        "divisible by 64.*Nearest valid sizes: 64 or 128",
    ),
    ("unet", dict(input_shape=(128,)), ValueError, "`input_shape` must be a tuple"),
    ("unet", dict(input_shape=(None, None, 3)), ValueError, "positive integer"),
    ("unet", dict(input_shape=(128, 128, 0)), ValueError, "must be positive"),
    (
        "unet",
        dict(num_classes=0),
        ValueError,
        "`num_classes` must be a positive integer",
    ),
    ("fcn32s", dict(num_classes=2.5), ValueError, "num_classes=2.5"),
    (
        "unet",
        dict(encoder="resnet18"),
        ValueError,
        "`encoder` must be one of \\['mobilenet_v2', 'resnet50', 'unet', 'vgg16'\\]",
    ),
    ("unet", dict(padding="full"), ValueError, "`padding` must be one of"),
    (
        "unet",
        dict(encoder="vgg16", padding="valid"),
        ValueError,
        "needs the `unet` encoder",
    ),
    (
        "unet",
        dict(encoder_weights="imagenet"),
        ValueError,
        "trained from scratch and has no pretrained weights",
    ),
    ("unet", dict(depth=9), ValueError, "`depth` must be an integer from 1 to 6"),
    (
        "mobilenet_unet",
        dict(alpha=0.6),
        ValueError,
        "alpha` must be one of \\(0.35, 0.5, 0.75, 1.0, 1.3, 1.4\\); "
        "received alpha=0.6",
    ),
    ("fcn8s", dict(alpha=0.5), ValueError, "applies only to the mobilenet_v2 encoder"),
    (
        "mobilenet_unet",
        dict(encoder="resnet50", alpha=0.5),
        ValueError,
        "applies only to the mobilenet_v2 encoder; received alpha=0.5 with "
        "encoder='resnet50'",
    ),
    (
        "fcn16s",
        dict(encoder_weights="/no/such/weights.h5"),
        ValueError,
        "Encoder weights file not found: '/no/such/weights.h5'",
    ),
    (
        "fcn16s",
        dict(encoder_weights=42),
        ValueError,
        "must be None .*'imagenet', or the path",
    ),
    (
        "mobilenet_unet",
        dict(encoder_weights="imagenet", input_shape=(64, 64, 1)),
        ValueError,
        "need RGB input \\(3 channels\\)",
    ),
    (
        "fcn8s",
        dict(variant="4s"),
        TypeError,
        "does not take the argument\\(s\\) \\['variant'\\]. It takes: .*"
        "variant is set by the model name: to change it, pick another name from "
        "\\['fcn16s', 'fcn32s', 'fcn8s'",
    ),
    ("fcn8s", dict(fc_width=0), ValueError, "`fc_width` must be a positive integer"),
    ("fcn32s", dict(dropout=1.0), ValueError, "`dropout` must be in \\[0, 1\\)"),
    (
        "unet",
        dict(decoder_filters=(64, 32)),
        ValueError,
        "`decoder_filters` must list 4 positive integers",
    ),
    (
        "mobilenet_unet",
        dict(decoder_filters=(64, 32, 16, 0)),
        ValueError,
        "`decoder_filters` must list 4 positive integers",
    ),
    (
        "pix2pix",
        dict(norm="layer"),
        ValueError,
        "`norm` must be one of \\['batch', 'instance'\\]. Received: norm='layer'",
    ),
    ("pix2pix", dict(output_activation="nope"), ValueError, "nope"),
    ("pix2pix", dict(base_filters=-1), ValueError, "`base_filters` must be a positive"),
    (
        "unet",
        dict(encoder_alpha=0.5),
        TypeError,
        "'unet' does not take the argument\\(s\\) \\['encoder_alpha'\\]. It takes: "
        "\\['input_shape', 'num_classes', 'encoder', 'padding', .*'alpha', "
        "'name'\\].$",
    ),
]


@pytest.mark.parametrize(
    "name, kwargs, error, pattern",
    CASES,
    ids=[f"{c[0]}-{'-'.join(c[1])}" for c in CASES],
)
def test_bad_arguments_raise_a_clear_error(name, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        create_model(name, **kwargs)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(
        ValueError,
        match="Unknown model 'segformer'. Available models: "
        "\\['fcn16s', 'fcn32s', 'fcn8s', 'mobilenet_unet'",
    ):
        create_model("segformer")


def test_model_arguments_lists_the_builder_arguments():
    arguments = model_arguments("fcn8s")
    assert "variant" not in arguments  # fixed by the name
    assert {"input_shape", "num_classes", "encoder", "fc_width"} <= set(arguments)


def test_valid_unet_output_size_rejects_invalid_sizes():
    assert valid_unet_output_size(572) == 388
    with pytest.raises(ValueError, match=re.escape("Nearest valid sizes: 556 or 572")):
        valid_unet_output_size(570)


def test_predict_tiled_rejects_a_same_padding_model_and_wrong_channels():
    same = build_unet((64, 64, 3), base_filters=2)
    with pytest.raises(ValueError, match="needs a square valid-padding U-Net"):
        predict_tiled(same, np.zeros((64, 64, 3)))
    valid = build_unet((188, 188, 1), padding="valid", base_filters=2)
    with pytest.raises(
        ValueError, match=re.escape("must have shape (height, width, 1)")
    ):
        predict_tiled(valid, np.zeros((30, 30, 3)))
