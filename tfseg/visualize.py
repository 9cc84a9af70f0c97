"""Pictures a person can open: prediction overlays and training curves."""

import csv

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# pet: orange, background: none, border: cyan (others: fixed colours)
CLASS_COLOURS = np.array(
    [[255, 140, 0], [0, 0, 0], [0, 200, 255], [200, 0, 200], [0, 200, 0]], np.float32
)


def overlay(image, mask, alpha=0.45):
    """Blends class colours over an image; background is left as it is."""
    image = np.asarray(image, np.float32)
    mask = np.asarray(mask).reshape(image.shape[:2])
    colours = CLASS_COLOURS[np.clip(mask, 0, len(CLASS_COLOURS) - 1)]
    painted = mask != 1
    blended = image.copy()
    blended[painted] = (1 - alpha) * image[painted] + alpha * colours[painted]
    return blended.clip(0, 255).astype(np.uint8)


def save_prediction_grid(path, images, masks, predictions, names=None, titles=None):
    """Writes a grid: one row per image, columns image / truth / predictions.

    Args:
        path: PNG file to write.
        images: uint8 `(N, H, W, 3)`.
        masks: ground truth `(N, H, W[, 1])`.
        predictions: a list of `(N, H, W)` class maps, one per model.
        names: optional image names for row labels.
        titles: column titles of the predictions. Defaults to
            `["prediction"]`.
    """
    titles = titles or ["prediction"] * len(predictions)
    rows, columns = len(images), 2 + len(predictions)
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.2 * columns, 2.2 * rows), squeeze=False
    )
    for row in range(rows):
        panels = [images[row], overlay(images[row], masks[row])]
        panels += [overlay(images[row], p[row]) for p in predictions]
        for column, panel in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(panel)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(
                    (["image", "ground truth"] + list(titles))[column], fontsize=9
                )
        if names is not None:
            axes[row, 0].set_ylabel(str(names[row]), fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def save_curves(history_csv, path):
    """Plots loss and mean IoU per epoch, train and validation, from a CSV log."""
    with open(history_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        return
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, metric in zip(axes, ("loss", "mean_iou")):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            values = [_number(row.get(key)) for row in rows]
            if np.isfinite(values).any():
                axis.plot(
                    epochs, values, style, label="validation" if prefix else "train"
                )
        axis.set_xlabel("epoch")
        axis.set_title(metric.replace("_", " "))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _number(text):
    """A CSV cell as a float; missing or "NA" cells (Keras CSVLogger) are nan."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")
