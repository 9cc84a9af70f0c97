"""Segmentation metrics: Keras metrics for training, and a NumPy confusion
matrix for reports (IoU and Dice per class, at any resolution).

Averaging rule, the same in both: a class's IoU is TP / (TP + FP + FN) over
every pixel scored; mean IoU averages over the classes that occur in the
labels or the predictions (a class absent from both is left out, as
`keras.metrics.MeanIoU` does). All sums are float32 or wider.

Void pixels: the data pipeline maps every mask value a dataset marks as
void ("ignore") to `VOID`, and no score counts a pixel whose truth is void.
"""

import re

import keras
import numpy as np
from keras import ops

from tfseg.config import BINARY_CLASS_NAMES
from tfseg.config import PET_CLASS_NAMES as CLASS_NAMES
from tfseg.config import VOID  # noqa: F401 (tfseg.metrics.VOID)


def class_names_for(num_classes):
    """Names of the classes: pet, background, border (or class_N)."""
    if num_classes == 2:
        return BINARY_CLASS_NAMES
    if num_classes == 3:
        return CLASS_NAMES
    return tuple(f"class_{index}" for index in range(num_classes))


def safe_metric_name(class_name):
    """A class name as a metric name: lowercase, other than letters and
    digits replaced by `_` (`"Road Marking"` -> `"road_marking"`)."""
    return re.sub(r"[^a-z0-9]+", "_", str(class_name).lower()).strip("_")


def resolve_class_names(num_classes_or_names):
    """The class names of a class count (`class_names_for`) or of a sequence
    of names, as a tuple.

    Raises:
        ValueError: for no classes.
        TypeError: for a single string.
    """
    if isinstance(num_classes_or_names, (int, np.integer)):
        if num_classes_or_names < 1:
            raise ValueError(
                f"Received num_classes={num_classes_or_names}; expected at "
                "least 1. Pass the number of classes or their names."
            )
        return class_names_for(int(num_classes_or_names))
    if isinstance(num_classes_or_names, str):
        raise TypeError(
            f"Received the string {num_classes_or_names!r}; expected a number "
            "of classes or a sequence of class names. Wrap one name in a list."
        )
    names = tuple(num_classes_or_names)
    if not names:
        raise ValueError(
            "Received no class names; expected one name per class, in id order."
        )
    return names


def training_metrics(num_classes_or_names=3, ignore_class=None):
    """Pixel accuracy, mean IoU and IoU per class, for `model.compile`.

    Keras's own IoU metrics, with `sparse_y_pred=False` so they take the
    argmax of the logits (the common mistake is to feed logits to a metric
    that expects class ids), and `PixelAccuracy`. Names: `pixel_accuracy`,
    `mean_iou`, and `iou_<name>` per class (`iou_pet`, `iou_background`,
    `iou_border`; other names through `safe_metric_name`).

    Args:
        num_classes_or_names: the number of classes (named by
            `class_names_for`), or the class names in id order. Defaults to
            `3` (the pets).
        ignore_class: a label none of the metrics counts, usually `VOID`.
            Defaults to `None` (every pixel counts).

    Returns:
        A list of `keras.metrics.Metric`.

    Raises:
        ValueError: for no classes, or names that give the same metric name.

    Example:

    >>> [m.name for m in training_metrics(["Sky", "Road"], ignore_class=VOID)]
    ['pixel_accuracy', 'mean_iou', 'iou_sky', 'iou_road']
    """
    names = resolve_class_names(num_classes_or_names)
    num_classes = len(names)
    metric_names = [
        f"iou_{safe_metric_name(name) or f'class_{index}'}"
        for index, name in enumerate(names)
    ]
    if len(set(metric_names)) < len(metric_names):
        raise ValueError(
            f"Received class names {list(names)}, which give the metric names "
            f"{metric_names}; expected each to be different. Rename the "
            "classes so they differ in letters or digits, not only in case or "
            "punctuation."
        )
    metrics = [
        PixelAccuracy(ignore_class=ignore_class),
        keras.metrics.MeanIoU(
            num_classes, sparse_y_pred=False, ignore_class=ignore_class, name="mean_iou"
        ),
    ]
    for index, name in enumerate(metric_names):
        metrics.append(
            keras.metrics.IoU(
                num_classes,
                target_class_ids=[index],
                sparse_y_pred=False,
                ignore_class=ignore_class,
                name=name,
            )
        )
    return metrics


@keras.saving.register_keras_serializable(package="tfseg")
class PixelAccuracy(keras.metrics.Metric):
    """The share of pixels whose argmax of the logits is their label.

    `keras.metrics.SparseCategoricalAccuracy` counts every pixel; this one
    leaves out pixels labelled `ignore_class`, and labels outside
    `0..num_classes - 1` (`VOID`), as `MeanIoU` and `ConfusionMatrix` do,
    so the accuracy logged in training is the report's `pixel_accuracy`.

    Args:
        ignore_class: a label left out of the count. Defaults to `None`.
        name: metric name. Defaults to `"pixel_accuracy"`.
        dtype: dtype of the result. Defaults to `None` (float32).

    Example:

    >>> import numpy as np
    >>> accuracy = PixelAccuracy(ignore_class=255)
    >>> labels = np.array([[0, 1, 255]])
    >>> logits = np.array([[[5.0, 0.0], [5.0, 0.0], [0.0, 5.0]]])
    >>> accuracy.update_state(labels, logits)
    >>> float(accuracy.result())  # 1 right of 2 scored
    0.5
    """

    def __init__(self, ignore_class=None, name="pixel_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.ignore_class = ignore_class
        # Counts in float32, as Keras's metrics keep theirs: exact to 2**24
        # pixels, and never overflowing.
        self.correct = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="correct"
        )
        self.scored = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="scored"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Counts `y_true` (`(..., 1)` or `(...)`) against logits `(..., C)`."""
        predictions = ops.argmax(y_pred, axis=-1)
        shape = ops.shape(predictions)
        labels = ops.reshape(ops.cast(y_true, "int32"), shape)
        # Labels outside 0..C-1 (VOID among them) are left out, as Keras's
        # IoU metrics and the ConfusionMatrix leave them out.
        scored = (labels >= 0) & (labels < ops.shape(y_pred)[-1])
        if self.ignore_class is not None:
            scored = scored & ops.not_equal(labels, self.ignore_class)
        weights = ops.cast(scored, "float32")
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float32")
            if len(sample_weight.shape) == len(shape) + 1:
                sample_weight = ops.squeeze(sample_weight, axis=-1)
            while len(sample_weight.shape) < len(shape):  # one weight an image
                sample_weight = ops.expand_dims(sample_weight, -1)
            weights = weights * ops.broadcast_to(sample_weight, shape)
        right = ops.cast(ops.equal(labels, ops.cast(predictions, "int32")), "float32")
        self.correct.assign_add(ops.sum(right * weights))
        self.scored.assign_add(ops.sum(weights))

    def result(self):
        return ops.cast(ops.divide_no_nan(self.correct, self.scored), self.dtype)

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}


class ConfusionMatrix:
    """Accumulates a confusion matrix (rows: truth, columns: prediction).

    Pixels whose truth is `VOID`, or any other value outside
    `0..num_classes - 1`, are left out of the matrix and counted in
    `ignored`.

    Args:
        num_classes: the number of classes.

    Example:

    >>> matrix = ConfusionMatrix(2)
    >>> matrix.update(np.array([0, 0, 1, 1, VOID]), np.array([0, 1, 1, 1, 0]))
    >>> matrix.scores()["iou"]  # pet: 1 / (1 + 1), background: 2 / 3
    [0.5, 0.6666666666666666]
    >>> matrix.ignored
    1
    """

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)
        self.ignored = 0

    def update(self, labels, predictions):
        """Adds integer label and prediction arrays of the same shape.

        Raises:
            ValueError: for arrays of different sizes, or a prediction outside
                `0..num_classes - 1` at a scored pixel.
        """
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
        if labels.shape != predictions.shape:
            raise ValueError(
                f"Labels and predictions differ in size: {labels.size} against "
                f"{predictions.size}."
            )
        scored = (labels >= 0) & (labels < self.num_classes)
        labels, predictions = labels[scored], predictions[scored]
        outside = (predictions < 0) | (predictions >= self.num_classes)
        if outside.any():
            raise ValueError(
                f"Received predicted class {int(predictions[outside][0])}; "
                f"expected class ids 0 to {self.num_classes - 1}. Pass the "
                "argmax of the logits, from a model with as many outputs as "
                "the ConfusionMatrix has classes."
            )
        self.ignored += int(scored.size - scored.sum())
        counts = np.bincount(
            labels * self.num_classes + predictions, minlength=self.num_classes**2
        )
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def scores(self):
        """Scores of the non-void pixels (floats, `nan` where undefined).

        Returns:
            dict: `pixel_accuracy` (and the same as `global_accuracy`: right
            pixels over scored pixels), `class_average_accuracy` (the mean
            recall TP / |truth| of the classes in the truth),
            `mean_iou` and `iou` per class, `frequency_weighted_iou` (the sum
            of each class's share of the truth times its IoU), `mean_dice`
            and `dice` per class, `pixels` and `scored_pixels` (both the
            pixels in the matrix) and `ignored_pixels`. A class absent from
            labels and predictions gets `nan` IoU and Dice and is left out
            of the means.
        """
        matrix = self.matrix.astype(np.float64)
        true_positive = np.diag(matrix)
        in_labels, in_predictions = matrix.sum(1), matrix.sum(0)
        union = in_labels + in_predictions - true_positive
        total = matrix.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, true_positive / union, np.nan)
            dice = np.where(
                union > 0, 2 * true_positive / (in_labels + in_predictions), np.nan
            )
            recall = np.where(in_labels > 0, true_positive / in_labels, np.nan)
        accuracy = float(true_positive.sum() / total) if total else float("nan")
        frequency_weighted = (
            float(np.sum(in_labels[in_labels > 0] * iou[in_labels > 0]) / total)
            if total
            else float("nan")
        )
        return {
            "pixel_accuracy": accuracy,
            "global_accuracy": accuracy,
            "class_average_accuracy": _mean_of_finite(recall),
            "mean_iou": _mean_of_finite(iou),
            "iou": [float(value) for value in iou],
            "frequency_weighted_iou": frequency_weighted,
            "mean_dice": _mean_of_finite(dice),
            "dice": [float(value) for value in dice],
            "pixels": int(total),
            "scored_pixels": int(total),
            "ignored_pixels": int(self.ignored),
        }


def _mean_of_finite(values):
    """The mean of the values that are not `nan` (`nan` if none is)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
