"""Quantized TFLite exports, run by the LiteRT interpreter, and exported
files scored and used by `evaluate` and `predict`."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from tests.conftest import copy_run
from tfseg import files
from tfseg import runs
from tfseg.cli import main as cli_main
from tfseg.metrics import ConfusionMatrix

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated"),
    pytest.mark.filterwarnings("ignore:In the future `np.object`:FutureWarning"),
]


def interpreter(path):
    """The LiteRT interpreter a user deploys with (TensorFlow's where
    ai-edge-litert is not installed)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tensorflow.lite import Interpreter
    return Interpreter(model_path=str(path))


def run_litert(path, images):
    """Runs a .tflite file on float images in 0..255, one at a time: a
    quantized input gets the pixels through its own scale and zero point,
    a quantized output is dequantized."""
    model = interpreter(path)
    model.allocate_tensors()
    source = model.get_input_details()[0]
    target = model.get_output_details()[0]
    outputs = []
    for image in images:
        scale, zero_point = source["quantization"]
        if source["dtype"] != np.float32:
            image = np.round(image / scale + zero_point)
        model.set_tensor(source["index"], image[None].astype(source["dtype"]))
        model.invoke()
        output = model.get_tensor(target["index"])[0]
        scale, zero_point = target["quantization"]
        if target["dtype"] == np.int8:
            output = (output.astype(np.float32) - zero_point) * scale
        outputs.append(output)
    return np.stack(outputs)


def export(run_dir, path, *flags):
    assert (
        cli_main(["export", run_dir, "--format", "tflite", "--out", str(path), *flags])
        == 0
    )
    return path


def export_ids(run_dir, tmp_path):
    """An int8 export whose output is the uint8 class ids."""
    flags = ["--quantize", "int8", "--output", "argmax"]
    return export(run_dir, tmp_path / "ids.tflite", *flags)


def keras_logits(run_dir, images):
    model = keras.models.load_model(os.path.join(run_dir, "model.keras"))
    return keras.ops.convert_to_numpy(model(images, training=False))


@pytest.mark.slow
def test_each_quantize_mode_runs_in_litert(finished_run, tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3))
    images = images.astype(np.float32)
    expected = keras_logits(finished_run, images)
    spread = float(expected.max() - expected.min())
    sizes = {}
    # Float modes: the Keras logits, to float32 rounding, half precision,
    # and int8 weights (a few percent of the logits' range).
    for mode, tolerance in (("none", 1e-4), ("float16", 1e-2), ("dynamic", 0.05)):
        path = export(finished_run, tmp_path / f"{mode}.tflite", "--quantize", mode)
        sizes[mode] = os.path.getsize(path)
        np.testing.assert_allclose(
            run_litert(path, images), expected, atol=tolerance * spread
        )
        assert files.read_json(f"{path}.json")["quantize"] == mode
    assert sizes["float16"] < 0.7 * sizes["none"]
    assert sizes["dynamic"] < 0.5 * sizes["none"]

    path = export(finished_run, tmp_path / "int8.tflite", "--quantize", "int8")
    details = interpreter(path).get_input_details()[0]
    # uint8 pixels in, exactly: scale 1, zero point 0.
    assert details["dtype"] == np.uint8
    assert details["quantization"] == (pytest.approx(1.0, abs=1e-6), 0)
    sidecar = files.read_json(f"{path}.json")
    config = files.read_json(os.path.join(finished_run, "config.json"))
    assert sidecar["input"]["dtype"] == "uint8"
    assert sidecar["class_names"] == ["pet", "background", "border"]
    assert sidecar["image_size"] == 32
    # Calibrated on the run's training split: 20 pets less the validation
    # ones, all of them (fewer than 300), never a test image.
    calibration = sidecar["calibration"]
    assert calibration["split"] == "train" and calibration["seed"] == 0
    assert (
        calibration["images"]
        == config["examples"]["train"]
        == len(calibration["names"])
    )
    int8 = run_litert(path, images)
    # Noise images lie outside the calibration data: most logits are near,
    # a few saturate (the real test below checks the masks).
    assert np.mean(np.abs(int8 - expected) <= 0.1 * spread) >= 0.99

    path = export_ids(finished_run, tmp_path)
    ids = run_litert(path, images)
    assert ids.dtype == np.uint8 and ids.shape == (3, 32, 32)
    np.testing.assert_array_equal(ids, int8.argmax(-1))


@pytest.mark.slow
def test_int8_agrees_with_keras_on_real_test_images(real_run, tmp_path):
    from tfseg.data.loading import load_splits

    path = export(real_run, tmp_path / "int8.tflite", "--quantize", "int8")
    config, _ = runs.read_config(real_run)
    test = load_splits(config, splits=["test"], progress=False)["test"]
    images = test.images.astype(np.float32)
    logits = keras_logits(real_run, images)
    int8_masks = run_litert(path, images).argmax(-1)
    agrees = logits.argmax(-1) == int8_masks
    # int8 changes only masks the float model was unsure of: where its top
    # two logits are a logit or more apart (most pixels), the masks agree
    # (measured 0.9994 to 1.0 over four 6-epoch runs, 1.0 over two 4-epoch
    # ones; overall 0.966 to 0.978, which a weak short run leaves close to
    # any fixed bar; mean IoU moved 0.0001 to 0.004).
    top_two = np.sort(logits, axis=-1)[..., -2:]
    confident = top_two[..., 1] - top_two[..., 0] >= 1.0
    assert confident.mean() > 0.3, confident.mean()
    assert agrees[confident].mean() >= 0.995, agrees[confident].mean()
    assert agrees.mean() >= 0.95, agrees.mean()
    scores = [ConfusionMatrix(3), ConfusionMatrix(3)]
    for matrix, masks in zip(scores, (logits.argmax(-1), int8_masks)):
        matrix.update(test.masks[..., 0], masks)
    float_iou, int8_iou = (matrix.scores()["mean_iou"] for matrix in scores)
    assert abs(float_iou - int8_iou) <= 0.01, (float_iou, int8_iou)
    calibrated = set(files.read_json(f"{path}.json")["calibration"]["names"])
    assert len(calibrated) == 300 and not calibrated & set(test.names)


@pytest.mark.slow
def test_evaluate_an_export_gives_the_run_report(finished_run, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    path = export(run_dir, tmp_path / "model.tflite")
    assert cli_main(["evaluate", run_dir, "--model", str(path)]) == 0
    exported = files.read_json(os.path.join(run_dir, "metrics_model.tflite.json"))
    own = files.read_json(os.path.join(run_dir, "metrics.json"))
    assert set(own) <= set(exported)
    assert exported["model"]["format"] == "tflite"
    assert exported["model"]["quantize"] == "none"
    for resolution in ("training_resolution", "original_resolution"):
        for key, value in own[resolution].items():
            if key != "confusion_matrix":
                assert exported[resolution][key] == pytest.approx(value, abs=1e-3), key

    # The file alone, on a folder's test split: its report beside it.
    from tfseg.data import write_synthetic_pets

    write_synthetic_pets(tmp_path / "pets", 6, seed=2)
    assert cli_main(["evaluate", str(path), "--data-dir", str(tmp_path / "pets")]) == 0
    report = files.read_json(f"{path}.metrics.json")
    listed = (tmp_path / "pets" / "annotations" / "test.txt").read_text().split("\n")
    assert report["images"] == len([line for line in listed if line.strip()])
    assert report["class_names"][2] == "border"
    assert os.path.isfile(f"{path}.metrics.md")


@pytest.mark.slow
def test_predict_with_an_int8_export(finished_run, tmp_path):
    path = export_ids(finished_run, tmp_path)
    photo = tmp_path / "cat.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (45, 70), np.uint8)).save(photo)  # grey
    assert (
        cli_main(["predict", str(path), str(photo), "--out", str(tmp_path / "o")]) == 0
    )
    with Image.open(tmp_path / "o" / "cat_mask.png") as mask:
        assert mask.size == (70, 45)
        assert set(np.unique(np.asarray(mask))) <= {0, 1, 2}
    assert json.loads((tmp_path / "ids.tflite.json").read_text())["output"] == "argmax"
