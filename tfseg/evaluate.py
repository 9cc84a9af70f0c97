"""Scores a model on a split: at the training resolution and at each image's
original resolution (logits resized back), with IoU and Dice per class."""

import json
import os

import keras
import numpy as np

from tfseg.metrics import ConfusionMatrix
from tfseg.metrics import class_names_for


def predict_logits(model, images, batch_size=16):
    """Yields `(start, logits)` for batches of uint8 or float images."""
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start : start + batch_size], np.float32)
        yield start, keras.ops.convert_to_numpy(model(batch, training=False))


def evaluate_model(model, examples, batch_size=16):
    """Scores `model` on `Examples`.

    Args:
        model: a segmentation model (images 0..255 in, logits out).
        examples: `Examples`; with `original_masks`, scores at the original
            resolution too.
        batch_size: images per forward pass. Defaults to `16`.

    Returns:
        dict: `images` (the number scored), `class_names`, and per resolution
        (`training_resolution`, and `original_resolution` when original masks
        are there) the scores of `ConfusionMatrix.scores`.
    """
    num_classes = model.output_shape[-1]
    at_training = ConfusionMatrix(num_classes)
    at_original = ConfusionMatrix(num_classes) if examples.original_masks else None
    for start, logits in predict_logits(model, examples.images, batch_size):
        masks = examples.masks[start : start + len(logits)]
        at_training.update(masks[..., 0], logits.argmax(-1))
        if at_original is None:
            continue
        for offset, image_logits in enumerate(logits):
            original = examples.original_masks[start + offset]
            resized = keras.ops.image.resize(
                image_logits[None], original.shape[:2], interpolation="bilinear"
            )
            prediction = keras.ops.convert_to_numpy(resized)[0].argmax(-1)
            at_original.update(original[..., 0], prediction)
    report = {
        "images": len(examples),
        "class_names": list(class_names_for(num_classes)),
        "training_resolution": at_training.scores(),
    }
    if at_original is not None:
        report["original_resolution"] = at_original.scores()
    return report


def format_report(report):
    """A Markdown table of a report from `evaluate_model`."""
    names = report["class_names"]
    header = ["resolution", "pixel acc", "mean IoU", *(f"IoU {n}" for n in names)]
    header += [f"Dice {n}" for n in names]
    lines = [
        f"Scored {report['images']} images.",
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


def write_report(report, run_dir):
    """Writes `metrics.json` and `metrics.md` into `run_dir`."""
    with open(os.path.join(run_dir, "metrics.json"), "w") as file:
        json.dump(report, file, indent=2)
    with open(os.path.join(run_dir, "metrics.md"), "w") as file:
        file.write(format_report(report) + "\n")
