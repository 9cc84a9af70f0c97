"""Per-pixel class weights: one check and one lookup for both batchers.

Keras's `class_weight` does not apply to segmentation masks, so the batchers
(`make_dataset` and `ArrayBatches`) hand `fit` a third element instead, a
`sample_weight` per pixel: the weight of the pixel's class. The check runs
once on the whole split; the lookup runs on each batch through the array
operations of `augment` (TensorFlow inside tf.data, NumPy, or JAX on its
device). NumPy only at import.
"""

import numpy as np

from tfseg.config import VOID


def class_weight_table(class_weights, masks):
    """Checks `class_weights` against the classes in `masks`.

    Args:
        class_weights: one weight per class (index = class id), or `None`.
        masks: the split's integer masks, `(N, H, W, 1)`.

    Returns:
        float32 `(num_classes,)` array, or `None` when `class_weights` is.

    Raises:
        ValueError: for weights that are not a flat list of finite numbers
            >= 0 with one positive, or that miss a class found in `masks`.
    """
    if class_weights is None:
        return None
    try:
        table = np.asarray(class_weights, np.float32)
    except (TypeError, ValueError):
        table = None
    if (
        table is None
        or table.ndim != 1
        or not np.isfinite(table).all()
        or (table < 0).any()
        or not (table > 0).any()
    ):
        raise ValueError(
            "`class_weights` must be a flat list of one finite weight >= 0 per "
            "class (index = class id), at least one positive; received "
            f"{class_weights!r}. For example (1.0, 1.0, 2.0) weights the border "
            "class twice."
        )
    masks = np.asarray(masks)
    classes = masks[masks != VOID]
    num_classes = int(np.max(classes)) + 1 if np.size(classes) else 0
    if len(table) < num_classes:
        raise ValueError(
            f"`class_weights` has {len(table)} value(s), but the masks hold "
            f"classes 0..{num_classes - 1}: pass {num_classes} weights, one per "
            "class (2 for a binary run, 3 for the pets)."
        )
    # Every uint8 label has an entry: void pixels (VOID) weigh nothing.
    return np.concatenate([table, np.zeros(VOID + 1 - len(table), np.float32)])


def median_frequency_weights(masks, num_classes):
    """SegNet's median frequency balancing (Eigen and Fergus, 2015).

    A class's frequency is its pixels over the pixels of the images that
    hold it; its weight is the median frequency over its own. Void pixels
    count in no frequency. A class no mask holds gets weight 1.

    Args:
        masks: the training split's class masks, `(N, H, W, 1)` or `(N, H, W)`.
        num_classes: the number of classes.

    Returns:
        A tuple of `num_classes` floats.

    Example:

    >>> masks = np.array([[[0, 0, 0, 1]], [[0, 0, 1, 1]]])  # 2 images
    >>> median_frequency_weights(masks, 2)
    (0.8, 1.333333)
    """
    masks = np.asarray(masks).reshape(len(masks), -1)
    pixels = np.zeros(num_classes, np.float64)
    present = np.zeros(num_classes, np.float64)
    for mask in masks:
        counts = np.bincount(mask[mask != VOID], minlength=num_classes)[:num_classes]
        pixels += counts
        present += np.where(counts > 0, counts.sum(), 0)
    held = pixels > 0
    frequency = np.where(held, pixels / np.maximum(present, 1), 0.0)
    median = np.median(frequency[held]) if held.any() else 1.0
    weights = np.where(held, median / np.where(held, frequency, 1.0), 1.0)
    return tuple(round(float(weight), 6) for weight in weights)


def pixel_weights(ops, table, masks):
    """The weight of each pixel's class: `table[masks[..., 0]]`.

    Args:
        ops: the array operations of `masks`' kind (`augment.NUMPY_OPS`,
            `augment.jax_ops()` or `augment.tf_ops()`).
        table: from `class_weight_table`.
        masks: integer `(batch, H, W, 1)`.

    Returns:
        float32 `(batch, H, W)`.
    """
    return ops.gather(ops.to_float(table), ops.to_int(masks[..., 0]))
