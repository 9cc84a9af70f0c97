"""Scores a model on a split and writes the reports of a run.

One way from an image to a mask, used by training reports, `tfseg evaluate`
and `tfseg predict` alike: the image is resized as the pipeline resizes
(`resize_image`: area averaging to shrink, bilinear to grow), the model
gives logits at its input size, and the logits are resized back to the
image's own size (`resize_logits`, bilinear) before the argmax. Scores are
reported at the training resolution and at each image's original one.

`tta="flip"` (`--tta flip`) averages the logits of each image and of its
mirror image (mirrored back): two forward passes for a steadier mask.
"""

import dataclasses
import os

import keras
import numpy as np

from tfseg import runs
from tfseg.config import TrainConfig
from tfseg.metrics import ConfusionMatrix
from tfseg.metrics import class_names_for
from tfseg.progress import Progress

# Test images shown in a run's predictions.png.
SHOWN_IMAGES = 6
# Test-time augmentations: none, or the mean logits of the image and of its
# horizontal mirror.
TTA_MODES = ("none", "flip")


def resize_image(image, size):
    """Resizes a uint8 `(h, w, 3)` image to `size` `(height, width)` as the
    pipeline does: area averaging (PIL's box filter) to shrink, bilinear to
    grow. Returns float32 0..255."""
    from PIL import Image  # only for images from files

    height, width = size
    picture = Image.fromarray(np.asarray(image, np.uint8))
    shrinking = picture.width >= width and picture.height >= height
    method = Image.BOX if shrinking else Image.BILINEAR
    return np.asarray(picture.resize((width, height), method), np.float32)


def resize_logits(logits, size):
    """Bilinear resizing of `(H, W, C)` logits to `size` `(h, w)`: the
    argmax of the result is the mask at that size."""
    resized = keras.ops.image.resize(logits[None], size, interpolation="bilinear")
    return keras.ops.convert_to_numpy(resized)[0]


def check_tta(model, tta):
    """Raises `ValueError` for an unknown mode, or flips of a model that
    outputs class ids (which cannot be averaged)."""
    if tta not in TTA_MODES:
        raise ValueError(f"--tta must be one of {TTA_MODES}, not {tta!r}.")
    if tta != "none" and getattr(model, "argmax_output", False):
        raise ValueError(
            "--tta flip averages the logits of an image and its mirror, but this "
            "model outputs class ids (exported with --output argmax); score a "
            "run folder or a file exported with logits."
        )


def model_logits(model, batch, tta="none"):
    """Logits of a float32 batch, as NumPy; with `tta="flip"`, the mean of
    the batch's and of its mirror's (mirrored back)."""
    logits = keras.ops.convert_to_numpy(model(batch, training=False))
    if tta == "flip":
        mirrored = np.ascontiguousarray(batch[:, :, ::-1])
        flipped = keras.ops.convert_to_numpy(model(mirrored, training=False))
        logits = (logits.astype(np.float32) + flipped[:, :, ::-1]) / 2
    return logits


def predict_logits(model, images, batch_size=16, tta="none"):
    """Yields `(start, logits)` for batches of uint8 or float images."""
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start : start + batch_size], np.float32)
        yield start, model_logits(model, batch, tta)


def segment(model, image, tta="none"):
    """The class mask, `(h, w)` uint8, of one uint8 `(h, w, 3)` image of any
    size."""
    size = model.input_shape[1:3]
    logits = model_logits(model, resize_image(image, size)[None], tta)[0]
    return resize_logits(logits, np.shape(image)[:2]).argmax(-1).astype(np.uint8)


def evaluate_model(model, examples, batch_size=16, progress=True, tta="none"):
    """Scores `model` on `Examples`.

    Args:
        model: a segmentation model (images 0..255 in, logits out).
        examples: `Examples`; with `original_masks`, scores at the original
            resolution too.
        batch_size: images per forward pass. Defaults to `16`.
        progress: show progress. Defaults to `True`.
        tta: `"none"` or `"flip"` (see `TTA_MODES`). Defaults to `"none"`.

    Returns:
        dict: `images` (the number scored), `class_names`, and per resolution
        (`training_resolution`, and `original_resolution` when original masks
        are there) the scores of `ConfusionMatrix.scores`; `tta` with flips.
    """
    check_tta(model, tta)
    num_classes = model.output_shape[-1]
    at_training = ConfusionMatrix(num_classes)
    at_original = ConfusionMatrix(num_classes) if examples.original_masks else None
    counter = Progress(len(examples), "scoring the test split", enabled=progress)
    for start, logits in predict_logits(model, examples.images, batch_size, tta):
        masks = examples.masks[start : start + len(logits)]
        at_training.update(masks[..., 0], logits.argmax(-1))
        for offset, image_logits in enumerate(logits if at_original else ()):
            original = examples.original_masks[start + offset]
            prediction = resize_logits(image_logits, original.shape[:2]).argmax(-1)
            at_original.update(original[..., 0], prediction)
        counter.advance(len(logits))
    counter.done()
    report = {
        "images": len(examples),
        "class_names": list(class_names_for(num_classes)),
        "training_resolution": at_training.scores(),
    }
    if at_original is not None:
        report["original_resolution"] = at_original.scores()
    if tta != "none":
        report["tta"] = tta
    return report


def format_report(report):
    """A Markdown table of a report from `evaluate_model`."""
    names = report["class_names"]
    header = ["resolution", "pixel acc", "mean IoU", *(f"IoU {n}" for n in names)]
    header += [f"Dice {n}" for n in names]
    source = report.get("data")
    flips = " with flip test-time augmentation" if report.get("tta") else ""
    lines = [
        f"Scored {report['images']} images"
        + (f" of the {source['split']} split of {source['source']}" if source else "")
        + f"{flips}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    for key in ("training_resolution", "original_resolution"):
        if key not in report:
            continue
        scores = report[key]
        values = [scores["pixel_accuracy"], scores["mean_iou"], *scores["iou"]]
        values += scores["dice"]
        cells = [key.replace("_", " "), *(f"{v:.4f}" for v in values)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(report, json_path):
    """Writes `report` as JSON to `json_path` and as Markdown beside it."""
    runs.write_json(json_path, report)
    runs.atomic_write(
        os.path.splitext(json_path)[0] + ".md", format_report(report) + "\n"
    )
    return json_path


def describe_source(config):
    """Where a config's data comes from, for a report."""
    if config.data_npz:
        return f"exported splits {config.data_npz}"
    if config.synthetic:
        return f"{config.synthetic} synthetic pets (seed {config.seed})"
    return config.data_dir or "TensorFlow Datasets oxford_iiit_pet"


def with_data(config, data_dir=None, data_npz=None, **changes):
    """`config` reading its data from `data_dir` or `data_npz` (absolute)
    instead of its own source, with any other `changes`."""
    return dataclasses.replace(
        config,
        data_dir=data_dir and os.path.abspath(data_dir),
        data_npz=data_npz and os.path.abspath(data_npz),
        synthetic=0,
        **changes,
    )


def report_run(run_dir, test, config):
    """Scores the run's best model on `test` and writes the run's reports:
    `model.keras`, `metrics.json`/`.md`, `predictions.png`, `curves.png`."""
    from tfseg import visualize  # matplotlib

    model = runs.write_final_model(run_dir)
    report = evaluate_model(model, test, config.batch_size)
    report["data"] = {"source": describe_source(config), "split": "test"}
    write_report(report, runs.report_paths(run_dir)[0])
    print(format_report(report))
    shown = test.take(range(min(SHOWN_IMAGES, len(test))))
    predictions = [
        logits.argmax(-1)
        for _, logits in predict_logits(model, shown.images, len(shown))
    ]
    visualize.save_prediction_grid(
        os.path.join(run_dir, "predictions.png"),
        shown.images,
        shown.masks,
        [np.concatenate(predictions)],
        names=shown.names,
        num_classes=model.output_shape[-1],
    )
    visualize.save_curves(
        os.path.join(run_dir, runs.HISTORY), os.path.join(run_dir, "curves.png")
    )
    return report


def evaluate_run(
    path,
    data_dir=None,
    data_npz=None,
    out=None,
    skip_bad=False,
    model_file=None,
    image_size=None,
    tta="none",
):
    """Scores a run's model, or an exported model, on a test split and
    writes a report.

    - A run folder, with neither `data_dir` nor `data_npz`: its own test
      split, into its `metrics.json`. With other data, only that data's test
      split is read (a folder with just `annotations/test.txt` will do), and
      the report goes to `metrics_<folder or file name>.json`, recording its
      source: the run's own report stays.
    - A run folder with `model_file` (an exported `.tflite`, `.onnx`,
      SavedModel or `.keras`): that model, run by its own runtime, on the
      run's data (or the data given), into `metrics_<file name>.json`.
    - An exported model alone: on the test split of `data_dir` or
      `data_npz` (required), into `<file name>.metrics.json` beside it.
    - With `tta="flip"`, the name gains `tta-flip` (`metrics_tta-flip.json`
      for a run's own split): the plain report stays beside it.

    Returns:
        The path of the JSON report.
    """
    from tfseg.data.loading import load_splits  # may need TF
    from tfseg.deployed import is_run
    from tfseg.deployed import load_deployed

    if out and os.path.isdir(out):
        raise runs.RunError(f"--out {out!r} is a folder; pass a .json file path.")
    names = []  # of the report: metrics_<model file>_<data>.json
    if is_run(path):
        if model_file:
            config, _ = runs.read_config(path)
            model = load_deployed(model_file)
            names.append(os.path.basename(os.path.normpath(model_file)))
        else:
            config, model = runs.open_run(path)
        if data_dir or data_npz:
            source = os.path.basename(os.path.normpath(data_dir or data_npz))
            names.append(os.path.splitext(source)[0])
        if tta != "none":
            names.append(f"tta-{tta}")
        default_out = runs.report_paths(path, "_".join(names) or None)[0]
    else:
        if model_file:
            raise runs.RunError(
                f"--model is for a run folder; {path!r} is not one (it has no "
                f"{runs.CONFIG}). Pass the model file as the path itself."
            )
        if not (data_dir or data_npz):
            raise runs.RunError(
                f"Scoring the exported model {path!r} needs data: pass --data-dir "
                "DIR (an Oxford-IIIT Pet folder) or --data-npz FILE."
            )
        model = load_deployed(path)
        config = TrainConfig(
            image_size=model.input_shape[1], binary=model.output_shape[-1] == 2
        )
        flips = "" if tta == "none" else f".tta-{tta}"
        default_out = os.path.normpath(path) + f"{flips}.metrics.json"
    check_tta(model, tta)
    check_input_size(model, config.image_size, image_size)
    if data_dir or data_npz:
        config = with_data(
            config, data_dir, data_npz, max_examples=None, cache_dir=None
        )
    config = dataclasses.replace(config, skip_bad=skip_bad or config.skip_bad)
    test = load_splits(config, splits=["test"])["test"]
    report = evaluate_model(model, test, config.batch_size, tta=tta)
    report["data"] = {
        "source": describe_source(config),
        "split": "test",
        "skipped": sorted(test.skipped),
    }
    if hasattr(model, "describe"):
        report["model"] = model.describe()
    json_path = write_report(report, out or default_out)
    print(format_report(report))
    print(f"report written to {json_path} (and .md)")
    return json_path


def check_input_size(model, expected, requested=None):
    """Raises `RunError` unless the model takes `expected`-pixel square
    images (and `requested`, the `--image-size` given, agrees)."""
    size = tuple(model.input_shape[1:3])
    for wanted, what in ((requested, "--image-size"), (expected, "the data")):
        if wanted is not None and size != (wanted, wanted):
            raise runs.RunError(
                f"The model takes {size[0]}x{size[1]} images, but {what} is "
                f"{wanted}x{wanted}: pass --image-size {size[0]} (or the model "
                "exported from a run of that size)."
            )
