"""Pictures a person can open: prediction overlays and training curves.

Every picture is written through `tfseg.files.atomic_path`: a crash never
leaves half a PNG.
"""

import csv

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from tfseg import files
from tfseg.metrics import class_names_for  # noqa: E402

# pet: orange, background: none, border: cyan (others: fixed colours)
CLASS_COLOURS = np.array(
    [[255, 140, 0], [0, 0, 0], [0, 200, 255], [200, 0, 200], [0, 200, 0]], np.float32
)
# How much of the class colour an overlay pixel takes (0: the photo alone).
OPACITY = 0.45


def overlay(image, mask, alpha=OPACITY):
    """Blends class colours over an image; background is left as it is."""
    image = np.asarray(image, np.float32)
    mask = np.asarray(mask).reshape(image.shape[:2])
    colours = CLASS_COLOURS[np.clip(mask, 0, len(CLASS_COLOURS) - 1)]
    painted = mask != 1
    blended = image.copy()
    blended[painted] = (1 - alpha) * image[painted] + alpha * colours[painted]
    return blended.clip(0, 255).astype(np.uint8)


def palette_image(mask):
    """A palette PNG image of a class mask: its pixel values are the class
    ids, and viewers show them in the overlay colours (background black)."""
    from PIL import Image

    picture = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    picture.putpalette(CLASS_COLOURS.astype(np.uint8).ravel().tolist())
    return picture


def overlay_with_legend(image, mask, class_names, alpha=OPACITY):
    """`overlay`, with a strip below naming each class's colour."""
    from PIL import Image
    from PIL import ImageDraw

    painted = overlay(image, mask, alpha)
    height, width = painted.shape[:2]
    strip = 16
    canvas = Image.new("RGB", (max(width, 80 * len(class_names)), height + strip))
    canvas.paste(Image.fromarray(painted), (0, 0))
    draw = ImageDraw.Draw(canvas)
    left = 4
    for index, name in enumerate(class_names):
        box = [left, height + 4, left + 8, height + 12]
        if index == 1:  # background is not painted: an outlined box
            draw.rectangle(box, outline="white")
        else:
            draw.rectangle(box, fill=tuple(int(c) for c in CLASS_COLOURS[index]))
        draw.text((left + 12, height + 2), name, fill="white")
        left += 12 + int(draw.textlength(name)) + 10
    return np.asarray(canvas)


def legend_handles(num_classes):
    """Matplotlib legend entries for the overlay colours."""
    return [
        Patch(
            facecolor=CLASS_COLOURS[index] / 255 if index != 1 else "none",
            edgecolor="black",
            label=name + (" (not painted)" if index == 1 else ""),
        )
        for index, name in enumerate(class_names_for(num_classes))
    ]


def save_figure(figure, path, dpi):
    with files.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    plt.close(figure)


def save_prediction_grid(
    path, images, masks, predictions, names=None, titles=None, num_classes=None
):
    """Writes a grid: one row per image, columns image / truth / predictions.

    Args:
        path: PNG file to write.
        images: uint8 `(N, H, W, 3)`.
        masks: ground truth `(N, H, W[, 1])`.
        predictions: a list of `(N, H, W)` class maps, one per model.
        names: optional image names for row labels.
        titles: column titles of the predictions. Defaults to
            `["prediction"]`.
        num_classes: classes named in the legend. Defaults to the largest
            class id seen plus one.
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
    if num_classes is None:
        num_classes = max(int(np.max(masks)), *(int(np.max(p)) for p in predictions))
        num_classes = max(num_classes + 1, 2)
    figure.legend(
        handles=legend_handles(num_classes),
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    figure.tight_layout(rect=(0, 0.06 if rows < 3 else 0.03, 1, 1))
    save_figure(figure, path, dpi=80)


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
                    epochs,
                    values,
                    style,
                    marker="o",  # a one-epoch run is a point, not an empty plot
                    label="validation" if prefix else "train",
                )
        axis.set_xlabel("epoch")
        axis.set_title(metric.replace("_", " "))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    save_figure(figure, path, dpi=90)


def _number(text):
    """A CSV cell as a float; missing or "NA" cells (Keras CSVLogger) are nan."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")
