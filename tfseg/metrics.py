"""Segmentation metrics: Keras's own IoU metrics for training, and a NumPy
confusion matrix for reports (IoU and Dice per class, at any resolution).

Averaging rule, the same in both: a class's IoU is TP / (TP + FP + FN) over
every pixel scored; mean IoU averages over the classes that occur in the
labels or the predictions (a class absent from both is left out, as
`keras.metrics.MeanIoU` does). All sums are float32 or wider.
"""

import keras
import numpy as np

CLASS_NAMES = ("pet", "background", "border")
BINARY_CLASS_NAMES = ("pet", "background")


def class_names_for(num_classes):
    """Names of the classes: pet, background, border (or class_N)."""
    if num_classes == 2:
        return BINARY_CLASS_NAMES
    if num_classes == 3:
        return CLASS_NAMES
    return tuple(f"class_{index}" for index in range(num_classes))


def training_metrics(num_classes=3):
    """Pixel accuracy, mean IoU and IoU per class, for `model.compile`.

    Keras's own metrics, with `sparse_y_pred=False` so they take the argmax
    of the logits (the common mistake is to feed logits to a metric that
    expects class ids). Names: `pixel_accuracy`, `mean_iou`, `iou_pet`,
    `iou_background`, `iou_border`.
    """
    metrics = [
        keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy"),
        keras.metrics.MeanIoU(num_classes, sparse_y_pred=False, name="mean_iou"),
    ]
    for index, name in enumerate(class_names_for(num_classes)):
        metrics.append(
            keras.metrics.IoU(
                num_classes,
                target_class_ids=[index],
                sparse_y_pred=False,
                name=f"iou_{name}",
            )
        )
    return metrics


class ConfusionMatrix:
    """Accumulates a confusion matrix (rows: truth, columns: prediction).

    Example:

    >>> matrix = ConfusionMatrix(2)
    >>> matrix.update(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    >>> matrix.scores()["iou"]  # pet: 1 / (1 + 1), background: 2 / 3
    [0.5, 0.6666666666666666]
    """

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, labels, predictions):
        """Adds integer label and prediction arrays of the same shape."""
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
        if labels.shape != predictions.shape:
            raise ValueError(
                f"Labels and predictions differ in size: {labels.size} against "
                f"{predictions.size}."
            )
        counts = np.bincount(
            labels * self.num_classes + predictions, minlength=self.num_classes**2
        )
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def scores(self):
        """Pixel accuracy, mean IoU, and IoU and Dice per class (floats).

        A class absent from labels and predictions gets `nan` and is left
        out of the means.
        """
        matrix = self.matrix.astype(np.float64)
        true_positive = np.diag(matrix)
        in_labels, in_predictions = matrix.sum(1), matrix.sum(0)
        union = in_labels + in_predictions - true_positive
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, true_positive / union, np.nan)
            dice = np.where(
                union > 0, 2 * true_positive / (in_labels + in_predictions), np.nan
            )
        total = matrix.sum()
        return {
            "pixel_accuracy": float(true_positive.sum() / total)
            if total
            else float("nan"),
            "mean_iou": float(np.nanmean(iou))
            if np.isfinite(iou).any()
            else float("nan"),
            "iou": [float(value) for value in iou],
            "mean_dice": float(np.nanmean(dice))
            if np.isfinite(dice).any()
            else float("nan"),
            "dice": [float(value) for value in dice],
            "pixels": int(total),
        }
