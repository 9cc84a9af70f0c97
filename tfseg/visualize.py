"""Pictures a person can open: prediction overlays and training curves.

Every picture is written through `tfseg.files.atomic_path`: a crash never
leaves half a PNG.
"""

import colorsys
import csv

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from tfseg import files
from tfseg.metrics import VOID
from tfseg.metrics import resolve_class_names

# pet: orange, background: none, border: cyan (others: fixed colours). Row 1
# is a placeholder: with this table, background (class 1) is left bare.
CLASS_COLOURS = np.array(
    [[255, 140, 0], [0, 0, 0], [0, 200, 255], [200, 0, 200], [0, 200, 0]], np.float32
)
# How much of the class colour an overlay pixel takes (0: the photo alone).
OPACITY = 0.45
# Hue step of the generated colours: the golden ratio's fraction, which
# spreads any number of hues evenly around the circle.
GOLDEN_HUE_STEP = 0.6180339887498949
# Legend strip: the height of one row of entries, and its least width (as
# wide as five entries: the pets' legend is one row).
LEGEND_ROW = 16
LEGEND_MIN_WIDTH = 80 * 5


def class_colours(num_classes, colors=None):
    """The drawing colours of `num_classes` classes, an `(N, 3)` table.

    `colors` when given (a dataset's own, e.g. from its `dataset.json`);
    otherwise the pets' table (`CLASS_COLOURS`) for up to five classes, and
    for more a deterministic walk around the colour wheel (hue steps of the
    golden ratio, alternating brightness), so any number of classes gets
    distinct colours and class `i` keeps its colour whatever `N`.

    Args:
        num_classes: the number of classes, 1 to 255 (255 is `VOID`).
        colors: RGB 0..255 per class, at least `num_classes` rows (the
            first `num_classes` are used). Defaults to `None`.

    Returns:
        float32 array `(num_classes, 3)`.

    Raises:
        ValueError: for a count outside 1..255, or colours of the wrong shape
            or range.

    Example:

    >>> class_colours(3)[0].tolist()  # pets: orange
    [255.0, 140.0, 0.0]
    >>> class_colours(12).shape
    (12, 3)
    """
    if not 1 <= num_classes < VOID:
        raise ValueError(
            f"Received num_classes={num_classes}; expected 1 to {VOID - 1} "
            f"(class ids must stay below VOID = {VOID})."
        )
    if colors is not None:
        table = np.asarray(colors, np.float32)
        if table.ndim != 2 or table.shape[1] != 3 or len(table) < num_classes:
            raise ValueError(
                f"Received colours of shape {table.shape}; expected one RGB "
                f"triple per class, ({num_classes}, 3). Give a colour to every "
                "class, in id order."
            )
        if table.min() < 0 or table.max() > 255:
            raise ValueError(
                f"Received colour values from {table.min()} to {table.max()}; "
                "expected 0 to 255. Write colours as 8-bit RGB."
            )
        return table[:num_classes]
    if num_classes <= len(CLASS_COLOURS):
        return CLASS_COLOURS[:num_classes]
    walk = [
        colorsys.hsv_to_rgb(
            (index * GOLDEN_HUE_STEP) % 1.0, 0.75, 1.0 - 0.2 * (index % 2)
        )
        for index in range(num_classes)
    ]
    return np.round(np.array(walk) * 255).astype(np.float32)


def drawing_table(num_classes, colors=None, unpainted=None):
    """`(class_colours(num_classes, colors), unpainted class ids)`.

    By default the pets' table leaves class 1 (background) bare, as tfseg
    always has; a dataset's own or generated colours paint every class.
    """
    table = class_colours(num_classes, colors)
    if unpainted is None:
        unpainted = (1,) if colors is None and num_classes <= len(CLASS_COLOURS) else ()
    return table, tuple(int(index) for index in unpainted)


def _table_for_mask(mask, colors, unpainted):
    """`drawing_table` of a mask drawn without its class count: the classes of
    `colors`, or the pets' five or as many as the mask's highest class id."""
    if colors is not None:
        return drawing_table(len(colors), colors, unpainted)
    return drawing_table(
        max(len(CLASS_COLOURS), highest_class(mask) + 1), None, unpainted
    )


def highest_class(*masks):
    """The highest class id in the masks, leaving out `VOID` (-1 if none)."""
    ids = [np.asarray(mask, np.int64) for mask in masks]
    return max((int(np.max(m[m < VOID], initial=-1)) for m in ids), default=-1)


def overlay(image, mask, alpha=OPACITY, colors=None, unpainted=None):
    """Blends class colours over an image; unpainted classes and `VOID` are
    left as they are.

    Args:
        image: RGB `(H, W, 3)`, 0..255.
        mask: class ids `(H, W)` (or `(H, W, 1)`).
        alpha: the share of the class colour. Defaults to `OPACITY`.
        colors: the classes' colours (see `class_colours`). Defaults to
            `None`: the pets' table, or generated colours for masks with
            class ids above 4. Pass a dataset's table so that every picture
            of it agrees.
        unpainted: class ids left bare. Defaults to `None`: background (1)
            with the pets' table, none otherwise.

    Returns:
        uint8 `(H, W, 3)`.
    """
    image = np.asarray(image, np.float32)
    mask = np.asarray(mask).reshape(image.shape[:2]).astype(np.int64)
    table, unpainted = _table_for_mask(mask, colors, unpainted)
    # Ids past the table (VOID among them) are never painted.
    painted = (mask >= 0) & (mask < len(table)) & ~np.isin(mask, unpainted)
    blended = image.copy()
    blended[painted] = (1 - alpha) * image[painted] + alpha * table[mask[painted]]
    return blended.clip(0, 255).astype(np.uint8)


def palette_image(mask, colors=None, unpainted=None):
    """A palette PNG image of a class mask: its pixel values are the class
    ids, and viewers show them in the overlay colours (unpainted classes and
    `VOID` black). `colors` and `unpainted` as for `overlay`."""
    from PIL import Image

    table, unpainted = _table_for_mask(mask, colors, unpainted)
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(table)] = table
    palette[list(unpainted)] = 0
    picture = Image.fromarray(np.asarray(mask, np.uint8), mode="P")
    picture.putpalette(palette.ravel().tolist())
    return picture


def overlay_with_legend(
    image, mask, class_names, alpha=OPACITY, colors=None, unpainted=None
):
    """`overlay`, with a strip below naming each class's colour.

    The strip is one row of entries (the pets' legend), and more rows for
    many or long names; the picture widens where one entry needs it, so no
    name runs past its edge. `colors` and `unpainted` as for `overlay`, for
    the classes of `class_names`.
    """
    from PIL import Image
    from PIL import ImageDraw

    table, unpainted = drawing_table(len(class_names), colors, unpainted)
    painted = overlay(image, mask, alpha, table, unpainted)
    height, width = painted.shape[:2]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    steps = [12 + int(measure.textlength(name)) + 10 for name in class_names]
    strip_width = max(width, min(80 * len(class_names), LEGEND_MIN_WIDTH))
    strip_width = max(strip_width, 4 + max(steps))
    places, left, top = [], 4, height
    for step in steps:
        if left + step > strip_width:  # the next row
            left, top = 4, top + LEGEND_ROW
        places.append((left, top))
        left += step
    canvas = Image.new("RGB", (strip_width, top + LEGEND_ROW))
    canvas.paste(Image.fromarray(painted), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, (name, (left, top)) in enumerate(zip(class_names, places)):
        box = [left, top + 4, left + 8, top + 12]
        if index in unpainted:  # not painted: an outlined box
            draw.rectangle(box, outline="white")
        else:
            draw.rectangle(box, fill=tuple(int(c) for c in table[index]))
        draw.text((left + 12, top + 2), name, fill="white")
    return np.asarray(canvas)


def legend_handles(num_classes_or_names, colors=None, unpainted=None):
    """Matplotlib legend entries for the overlay colours.

    Args:
        num_classes_or_names: a class count (named by `class_names_for`) or
            the class names in id order.
        colors: as for `overlay`. Defaults to `None`.
        unpainted: as for `overlay`. Defaults to `None`.
    """
    names = resolve_class_names(num_classes_or_names)
    table, unpainted = drawing_table(len(names), colors, unpainted)
    return [
        Patch(
            facecolor="none" if index in unpainted else table[index] / 255,
            edgecolor="black",
            label=name + (" (not painted)" if index in unpainted else ""),
        )
        for index, name in enumerate(names)
    ]


def save_figure(figure, path, dpi):
    with files.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    plt.close(figure)


def save_prediction_grid(
    path,
    images,
    masks,
    predictions,
    names=None,
    titles=None,
    num_classes=None,
    class_names=None,
    colors=None,
):
    """Writes a grid: one row per image, columns image / truth / predictions.

    Args:
        path: PNG file to write.
        images: uint8 `(N, H, W, 3)`.
        masks: ground truth `(N, H, W[, 1])`; `VOID` pixels are left bare.
        predictions: a list of `(N, H, W)` class maps, one per model.
        names: optional image names for row labels.
        titles: column titles of the predictions. Defaults to
            `["prediction"]`.
        num_classes: classes named in the legend. Defaults to the number of
            `class_names`, or the largest class id seen plus one.
        class_names: the names in the legend. Defaults to
            `class_names_for(num_classes)`.
        colors: the classes' colours (see `class_colours`). Defaults to
            `None` (the pets' table, or generated colours).
    """
    titles = titles or ["prediction"] * len(predictions)
    if class_names is not None:
        num_classes = len(class_names)
    if num_classes is None:
        num_classes = max(highest_class(masks, *predictions) + 1, 2)
    # One table for every panel and the legend.
    table, unpainted = drawing_table(num_classes, colors)
    rows, columns = len(images), 2 + len(predictions)
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.2 * columns, 2.2 * rows), squeeze=False
    )
    for row in range(rows):
        shown = [masks[row], *(p[row] for p in predictions)]
        panels = [images[row]]
        panels += [overlay(images[row], m, OPACITY, table, unpainted) for m in shown]
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
    figure.legend(
        handles=legend_handles(class_names or num_classes, table, unpainted),
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
