"""Fully convolutional inference: each image at its own resolution, padded
to the model's multiple (`tfseg.inference.NativeResolution`), and
`--resolution image` in `tfseg evaluate`."""

import json
import os

import keras
import numpy as np
import pytest

from tests.conftest import copy_run
from tests.models.test_models import SMALL
from tfseg import inference
from tfseg.config import VOID
from tfseg.data.arrays import Examples
from tfseg.evaluate import evaluate_model
from tfseg.evaluate import report_path
from tfseg.inference import NativeResolution
from tfseg.inference import clone_at
from tfseg.inference import segment
from tfseg.inference import size_multiple
from tfseg.models import create_model

# The trained size of the small models, and the size they are rebuilt at.
SIZE = (32, 64)
OTHER = (64, 96)
# Each builder's size rule for SMALL's settings at SIZE: 32 for the
# keras.applications encoders, 2**depth (4) for the plain U-Net,
# 2**num_downsamples for pix2pix (5: the halvings of 32).
MULTIPLES = {
    "fcn32s": 32,
    "fcn16s": 32,
    "fcn8s": 32,
    "unet": 16,
    "mobilenet_unet": 32,
    "pix2pix": 32,
}


def images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def logits(model, batch):
    return keras.ops.convert_to_numpy(model(batch, training=False))


def identity_net(size=(32, 32), stride=4):
    """Logits = the image itself, through a graph that downsamples by
    `stride` (a zero branch), so its multiple is `stride` and any shift of
    the crop shows."""
    inputs = keras.Input((*size, 3))
    same = keras.layers.Conv2D(3, 1, name="same")(inputs)
    coarse = keras.layers.MaxPooling2D(stride)(inputs)
    coarse = keras.layers.UpSampling2D(stride)(coarse)
    coarse = keras.layers.Conv2D(3, 1, name="zero")(coarse)
    model = keras.Model(inputs, keras.layers.Add()([same, coarse]))
    model.get_layer("same").set_weights([np.eye(3)[None, None], np.zeros(3)])
    model.get_layer("zero").set_weights([np.zeros((1, 1, 3, 3)), np.zeros(3)])
    return model


def test_the_modes_and_the_flag_agree():
    from tfseg.cli.parser import build_parser

    assert inference.RESOLUTION_MODES[0] == "model"  # the default
    evaluate = build_parser().parse_args(["evaluate", "RUN"])
    assert evaluate.resolution == "model"
    for mode in inference.RESOLUTION_MODES:
        args = build_parser().parse_args(["evaluate", "RUN", "--resolution", mode])
        assert args.resolution == mode
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "RUN", "--resolution", "native"])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_model_runs_at_another_size_with_its_weights(name):
    model = create_model(name, input_shape=(*SIZE, 3), num_classes=3, **SMALL[name])
    native = NativeResolution(model)
    assert native.multiple == (MULTIPLES[name],) * 2
    rebuilt = native.model_at(OTHER)
    assert rebuilt.input_shape[1:3] == OTHER and rebuilt is native.model_at(OTHER)
    # Rebuilt again at the trained size from the rebuilt one: the weights
    # went there and back, so the logits are the original's.
    back = NativeResolution(rebuilt).model_at(SIZE)
    assert back is not model and back.input_shape[1:3] == SIZE
    batch = images((2, *SIZE, 3))
    np.testing.assert_allclose(logits(back, batch), logits(model, batch), atol=1e-5)
    # An odd size: padded to the multiple, cropped back.
    odd = images((2, 37, 53, 3))
    assert native.logits(odd).shape == (2, 37, 53, 3)
    mask = segment(model, odd[0].astype(np.uint8), resolution="image")
    assert mask.shape == (37, 53) and mask.dtype == np.uint8


def test_a_network_without_the_weights_would_be_caught():
    """The check above fails where weights are not copied: a clone keeps
    the architecture only."""
    model = create_model("unet", input_shape=(*SIZE, 3), **SMALL["unet"])
    batch = images((1, *SIZE, 3))
    fresh = clone_at(model, SIZE)
    assert not np.allclose(logits(fresh, batch), logits(model, batch), atol=1e-3)
    native = NativeResolution(model, rebuild=lambda size: clone_at(model, size))
    copied = NativeResolution(native.model_at(OTHER)).model_at(SIZE)
    np.testing.assert_allclose(logits(copied, batch), logits(model, batch), atol=1e-5)


def test_the_padding_is_cropped_back_where_it_was_put():
    model = identity_net()
    assert size_multiple(model) == (4, 4)
    odd = images((2, 37, 53, 3))
    for pad in inference.PAD_MODES:
        native = NativeResolution(model, pad)
        assert native.padded_size((37, 53)) == (40, 56)
        np.testing.assert_allclose(native.logits(odd), odd, atol=1e-4)
        flipped = native.logits(odd, tta="flip")
        np.testing.assert_allclose(flipped, odd, atol=1e-4)


def test_reflect_mirrors_the_image_and_zero_is_black():
    image = images((1, 5, 6, 3))
    for mode, border in (("reflect", image[0, 1, 0]), ("zero", np.zeros(3))):
        padded, (top, left) = inference.pad_image(image, (8, 8), mode)
        assert padded.shape == (1, 8, 8, 3) and (top, left) == (1, 1)
        np.testing.assert_array_equal(padded[:, 1:6, 1:7], image)
        np.testing.assert_array_equal(padded[0, 0, 1], border)
    with pytest.raises(ValueError, match="pad must be one of"):
        inference.pad_image(image, (8, 8), "edge")


def test_the_rebuilt_network_keeps_the_dtype_policy():
    keras.config.set_dtype_policy("mixed_float16")
    model = create_model("unet", input_shape=(*SIZE, 3), **SMALL["unet"])
    keras.config.set_dtype_policy("float32")
    rebuilt = NativeResolution(model).model_at(OTHER)
    assert [layer.dtype_policy.name for layer in rebuilt.layers] == [
        layer.dtype_policy.name for layer in model.layers
    ]
    assert rebuilt.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # restored


def test_rebuilt_networks_are_kept_per_shape_and_per_model():
    model = identity_net()
    native = inference.native_resolution(model)
    assert inference.native_resolution(model) is native
    assert native.model_at((32, 32)) is model  # its own size: no rebuild
    kept = [native.model_at((8 * k, 8)) for k in range(1, 6)]
    assert len(native._models) == inference.CACHED_SHAPES
    assert native.model_at((40, 8)) is kept[-1]


def test_the_valid_unet_runs_overlap_tile():
    from tfseg.models import predict_tiled

    model = create_model(
        "unet", input_shape=(204, 204, 3), padding="valid", base_filters=2
    )
    native = NativeResolution(model)
    odd = images((1, 37, 53, 3))
    result = native.logits(odd)
    assert result.shape == (1, 37, 53, 3)
    np.testing.assert_allclose(result[0], predict_tiled(model, odd[0]), atol=1e-5)


class FixedSize:
    """Stands for an exported .tflite model: a fixed input, no layers."""

    kind = "tflite"
    input_shape = (None, 32, 32, 3)
    output_shape = (None, 32, 32, 3)


def test_exported_models_keep_the_model_resolution_and_say_so():
    assert inference.usable_resolution(identity_net(), "image") == ("image", None)
    resolution, note = inference.usable_resolution(FixedSize(), "image")
    assert resolution == "model" and "tflite" in note and "32x32" in note
    assert inference.usable_resolution(FixedSize(), "model") == ("model", None)
    with pytest.raises(ValueError, match="--resolution must be one of"):
        inference.usable_resolution(FixedSize(), "native")
    with pytest.raises(ValueError, match="fixed input size"):
        NativeResolution(FixedSize())


def colour_examples(sizes, training=32):
    """Examples whose class is the brightest channel: the identity net
    segments them perfectly at any resolution. One void pixel each."""
    rng = np.random.default_rng(0)
    originals, masks = [], []
    for height, width in sizes:
        mask = rng.integers(0, 3, (height, width)).astype(np.uint8)
        originals.append((np.eye(3)[mask] * 200 + 20).astype(np.uint8))
        mask[0, 0] = VOID
        masks.append(mask[..., None])
    resized = np.stack(
        [inference.resize_image(i, (training, training)) for i in originals]
    )
    count = len(sizes)
    examples = Examples(
        resized.astype(np.uint8),
        np.zeros((count, training, training, 1), np.uint8),
        np.array([f"image{i}" for i in range(count)]),
        np.full(count, -1, np.int32),
        np.full(count, -1, np.int32),
        masks,
    )
    return examples, originals


def test_evaluate_at_the_image_resolution_scores_at_the_originals_size():
    sizes = [(37, 53), (37, 53), (40, 48)]
    examples, originals = colour_examples(sizes)
    report = evaluate_model(
        identity_net(),
        examples,
        batch_size=4,
        progress=False,
        resolution="image",
        images=originals,
    )
    assert report["resolution"] == "image" and report["pad"] == "reflect"
    assert "training_resolution" not in report
    scores = report["original_resolution"]
    assert scores["mean_iou"] == pytest.approx(1.0)
    assert scores["ignored_pixels"] == len(sizes)
    assert scores["pixels"] == sum(h * w for h, w in sizes) - len(sizes)
    plain = evaluate_model(identity_net(), examples, progress=False)
    assert plain["resolution"] == "model" and "training_resolution" in plain
    assert plain["original_resolution"]["pixels"] == scores["pixels"]


def test_evaluate_refuses_images_that_are_not_the_masks():
    examples, originals = colour_examples([(37, 53), (40, 48)])
    model = identity_net()
    with pytest.raises(ValueError, match="received 0 images and 2 masks"):
        evaluate_model(model, examples, progress=False, resolution="image")
    with pytest.raises(ValueError, match="image1: the image given is 48x40"):
        evaluate_model(
            model,
            examples,
            progress=False,
            resolution="image",
            images=[originals[0], originals[1].transpose(1, 0, 2)],
        )


def test_the_report_name_gains_the_resolution(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert report_path(str(run)).endswith("metrics.json")
    named = report_path(str(run), resolution="image")
    assert os.path.basename(named) == "metrics_resolution-image.json"
    both = report_path(str(run), data="/d/camvid", tta="flip", resolution="image")
    assert os.path.basename(both) == "metrics_camvid_tta-flip_resolution-image.json"
    alone = report_path(str(tmp_path / "model.keras"), resolution="image")
    assert alone.endswith("model.keras.resolution-image.metrics.json")


def test_evaluate_a_run_at_the_image_resolution(finished_run, tmp_path):
    from tfseg.cli import main

    run = copy_run(finished_run, tmp_path)
    assert main(["evaluate", run, "--resolution", "image"]) == 0
    with open(os.path.join(run, "metrics_resolution-image.json")) as file:
        report = json.load(file)
    with open(os.path.join(run, "metrics.json")) as file:
        plain = json.load(file)  # the run's own report stays
    assert report["resolution"] == "image" and "training_resolution" in plain
    assert report["images"] == plain["images"]
    scored = report["original_resolution"]
    at_original = plain["original_resolution"]
    assert scored["pixels"] + scored["ignored_pixels"] == (
        at_original["pixels"] + at_original["ignored_pixels"]
    )


def test_data_without_image_files_is_refused_before_it_is_read():
    from tfseg.config import TrainConfig
    from tfseg.runs import RunError

    for config in (TrainConfig(), TrainConfig(data_npz="/data/pets.npz")):
        with pytest.raises(RunError, match="--resolution model"):
            inference.check_image_files(config)
    inference.check_image_files(TrainConfig(data_dir="/data/camvid"))
