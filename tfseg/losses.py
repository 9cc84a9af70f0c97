"""Segmentation losses on logits and sparse masks, computed in float32.

Keras only (no TensorFlow), so they train on every backend. They are
registered Keras serializables: a model compiled with one of them saves and
reloads once `tfseg` is imported; `tfseg.train.recipe` also writes a copy of the
trained model without its compile state, which reloads anywhere.

- `"ce"`: `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`.
- `"dice"`: `SoftDiceLoss`, 1 - mean soft Dice over classes.
- `"ce+dice"`: `CrossentropyDiceLoss`, the sum of the two.
- `"focal"`: `SparseFocalLoss`, focal cross-entropy (Lin et al. 2017).

Each takes `ignore_class` (usually `tfseg.metrics.VOID`): pixels with that
label count in no term. Per-pixel terms are then averaged over the other
pixels (as Keras's own `ignore_class` does), and Dice sums run over them.
"""

import keras
from keras import ops

from tfseg.config import LOSS_NAMES


def _probabilities_and_one_hot(y_true, y_pred, ignore_class=None):
    """float32 softmax of the logits and one-hot labels, `(batch, H, W, C)`,
    and the scored pixels, `(batch, H, W)`: 1.0, or 0.0 where the label is
    `ignore_class` (whose one-hot row is all zeros)."""
    log_probabilities, one_hot, scored = _log_probabilities_and_one_hot(
        y_true, y_pred, ignore_class
    )
    return ops.exp(log_probabilities), one_hot, scored


def _log_probabilities_and_one_hot(y_true, y_pred, ignore_class=None):
    """`_probabilities_and_one_hot` with the float32 log-softmax of the
    logits in place of their softmax."""
    logits = ops.cast(y_pred, "float32")
    num_classes = ops.shape(logits)[-1]
    labels = ops.cast(ops.reshape(y_true, ops.shape(logits)[:-1]), "int32")
    if ignore_class is None:
        scored = ops.ones(ops.shape(labels), "float32")
    else:
        scored = ops.cast(ops.not_equal(labels, ignore_class), "float32")
        labels = ops.where(scored > 0, labels, 0)
    one_hot = ops.one_hot(labels, num_classes) * scored[..., None]
    return ops.log_softmax(logits, axis=-1), one_hot, scored


def _averaged_over_scored(values, scored, reduction):
    """Per-pixel `values` at scored pixels and 0 elsewhere, weighted so that
    Keras's mean over every pixel is the mean over the scored ones.

    The weighting of `keras.losses.Loss`'s own masks (`total / scored` under
    the mean reductions), which Keras applies to its cross-entropy's
    `ignore_class`; without an ignored pixel every weight is 1.
    """
    if reduction not in ("mean", "sum_over_batch_size"):
        return values * scored
    return values * ops.divide_no_nan(scored, ops.mean(scored))


def soft_dice(y_true, y_pred, smooth=1.0, ignore_class=None):
    """Soft Dice per class over the whole batch, float32 `(num_classes,)`.

    Dice = (2 |P * T| + smooth) / (|P| + |T| + smooth), with P the softmax of
    the logits and T the one-hot masks, summed over every pixel of the
    batch whose label is not `ignore_class`. The sums run in float32 even
    under mixed precision (float16 sums of a 128 x 128 x 64 batch would
    overflow at 65,504).
    """
    probabilities, one_hot, scored = _probabilities_and_one_hot(
        y_true, y_pred, ignore_class
    )
    return _dice_of(probabilities * scored[..., None], one_hot, smooth)


def _dice_of(probabilities, one_hot, smooth):
    """Soft Dice per class of scored probabilities and one-hot labels."""
    axes = tuple(range(len(probabilities.shape) - 1))
    intersection = ops.sum(probabilities * one_hot, axis=axes)
    total = ops.sum(probabilities, axis=axes) + ops.sum(one_hot, axis=axes)
    return (2.0 * intersection + smooth) / (total + smooth)


@keras.saving.register_keras_serializable(package="tfseg")
class SoftDiceLoss(keras.losses.Loss):
    """1 - mean soft Dice over classes, from logits and sparse masks.

    Milletari et al., V-Net, 2016 (https://arxiv.org/abs/1606.04797). The
    loss is a property of the whole batch, so every pixel gets the same
    value; class balance comes from averaging over classes.

    Args:
        smooth: added to numerator and denominator. Defaults to `1.0`.
        ignore_class: a label left out of the Dice sums. Defaults to `None`.
        name: loss name. Defaults to `"soft_dice"`.

    Example:

    >>> import numpy as np
    >>> masks = np.array([[[0, 1]]])
    >>> perfect = np.array([[[[9.0, -9.0], [-9.0, 9.0]]]])
    >>> float(SoftDiceLoss()(masks, perfect)) < 0.01
    True
    """

    def __init__(self, smooth=1.0, ignore_class=None, name="soft_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = smooth
        self.ignore_class = ignore_class

    def call(self, y_true, y_pred):
        dice = soft_dice(y_true, y_pred, self.smooth, self.ignore_class)
        return ops.broadcast_to(1.0 - ops.mean(dice), ops.shape(y_pred)[:-1])

    def get_config(self):
        return {
            **super().get_config(),
            "smooth": self.smooth,
            "ignore_class": self.ignore_class,
        }


@keras.saving.register_keras_serializable(package="tfseg")
class CrossentropyDiceLoss(keras.losses.Loss):
    """Cross-entropy per pixel plus the batch's soft Dice loss.

    Args:
        dice_weight: weight of the Dice term. Defaults to `1.0`.
        smooth: Dice smoothing. Defaults to `1.0`.
        ignore_class: a label that counts in neither term. Defaults to
            `None`.
        name: loss name. Defaults to `"crossentropy_dice"`.
    """

    def __init__(
        self,
        dice_weight=1.0,
        smooth=1.0,
        ignore_class=None,
        name="crossentropy_dice",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.dice_weight = dice_weight
        self.smooth = smooth
        self.ignore_class = ignore_class

    def call(self, y_true, y_pred):
        # One log-softmax and one one-hot serve both terms (CE without the
        # clipping of log(softmax); about 2% of a CamVid step saved).
        log_probabilities, one_hot, scored = _log_probabilities_and_one_hot(
            y_true, y_pred, self.ignore_class
        )
        crossentropy = -ops.sum(one_hot * log_probabilities, axis=-1)
        probabilities = ops.exp(log_probabilities) * scored[..., None]
        dice = 1.0 - ops.mean(_dice_of(probabilities, one_hot, self.smooth))
        crossentropy = _averaged_over_scored(crossentropy, scored, self.reduction)
        return crossentropy + self.dice_weight * dice

    def get_config(self):
        return {
            **super().get_config(),
            "dice_weight": self.dice_weight,
            "smooth": self.smooth,
            "ignore_class": self.ignore_class,
        }


@keras.saving.register_keras_serializable(package="tfseg")
class SparseFocalLoss(keras.losses.Loss):
    """Focal cross-entropy from logits and sparse masks, per pixel.

    Lin et al., "Focal Loss for Dense Object Detection", 2017
    (https://arxiv.org/abs/1708.02002): `-(1 - p_t)**gamma * log(p_t)`,
    which down-weights pixels the model already gets right.

    Args:
        gamma: focusing parameter; 0 gives cross-entropy. Defaults to `2.0`.
        ignore_class: a label left out of the mean. Defaults to `None`.
        name: loss name. Defaults to `"sparse_focal"`.
    """

    def __init__(self, gamma=2.0, ignore_class=None, name="sparse_focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = gamma
        self.ignore_class = ignore_class

    def call(self, y_true, y_pred):
        log_probabilities, one_hot, scored = _log_probabilities_and_one_hot(
            y_true, y_pred, self.ignore_class
        )
        log_true = ops.sum(one_hot * log_probabilities, axis=-1)
        focal = -((1.0 - ops.exp(log_true)) ** self.gamma) * log_true
        return _averaged_over_scored(focal, scored, self.reduction)

    def get_config(self):
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "ignore_class": self.ignore_class,
        }


def get_loss(name, ignore_class=None):
    """Returns the loss for a name of `LOSS_NAMES`.

    Args:
        name: one of `LOSS_NAMES` (`"ce"`, `"dice"`, `"ce+dice"`, `"focal"`).
        ignore_class: a label that counts in no loss, usually
            `tfseg.metrics.VOID`. Defaults to `None` (every pixel counts).

    Returns:
        A `keras.losses.Loss` taking sparse masks and logits.

    Raises:
        ValueError: for an unknown name, listing the known ones.

    Example:

    >>> get_loss("focal", ignore_class=255).ignore_class
    255
    """
    if name == "ce":
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=ignore_class
        )
    if name == "dice":
        return SoftDiceLoss(ignore_class=ignore_class)
    if name == "ce+dice":
        return CrossentropyDiceLoss(ignore_class=ignore_class)
    if name == "focal":
        return SparseFocalLoss(ignore_class=ignore_class)
    raise ValueError(f"Unknown loss {name!r}; choose one of {list(LOSS_NAMES)}.")
