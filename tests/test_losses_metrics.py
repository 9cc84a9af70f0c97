"""Losses and metrics against values computed by hand."""

import keras
import numpy as np
import pytest

from tfseg import losses
from tfseg import metrics

pytestmark = pytest.mark.backend_agnostic

# Four pixels of one image: truth 0, 0, 1, 2; logits strongly predict
# 0, 1, 1, 1 (so pet is half right, background right, border missed).
TRUTH = np.array([[[0, 0], [1, 2]]], np.int32)
PREDICTED = np.array([[[0, 1], [1, 1]]], np.int32)


def logits_for(classes, num_classes=3, strength=30.0):
    return (np.eye(num_classes)[classes] * strength).astype(np.float32)


def test_confusion_matrix_scores_by_hand():
    matrix = metrics.ConfusionMatrix(3)
    matrix.update(TRUTH, PREDICTED)
    # rows truth, columns prediction
    np.testing.assert_array_equal(matrix.matrix, [[1, 1, 0], [0, 1, 0], [0, 1, 0]])
    scores = matrix.scores()
    # IoU pet = 1 / (1 + 1 + 0); background = 1 / (1 + 2 + 0); border = 0 / 1
    assert scores["iou"] == pytest.approx([1 / 2, 1 / 3, 0.0])
    assert scores["mean_iou"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    # Dice = 2 TP / (|truth| + |prediction|)
    assert scores["dice"] == pytest.approx([2 / 3, 2 / 4, 0.0])
    assert scores["pixel_accuracy"] == pytest.approx(2 / 4)
    assert scores["pixels"] == 4


def test_classes_absent_everywhere_are_left_out_of_the_mean():
    matrix = metrics.ConfusionMatrix(3)
    matrix.update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    scores = matrix.scores()
    assert np.isnan(scores["iou"][2])
    assert scores["mean_iou"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_keras_training_metrics_take_logits_and_agree_with_the_hand_count():
    results = {}
    for metric in metrics.training_metrics(3):
        metric.update_state(TRUTH[..., None], logits_for(PREDICTED))
        results[metric.name] = float(metric.result())
    assert results["pixel_accuracy"] == pytest.approx(0.5)
    assert results["mean_iou"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert results["iou_pet"] == pytest.approx(1 / 2)
    assert results["iou_background"] == pytest.approx(1 / 3)
    assert results["iou_border"] == pytest.approx(0.0)


def test_soft_dice_by_hand():
    # Certain predictions: soft Dice equals hard Dice per class (smooth 0).
    dice = keras.ops.convert_to_numpy(
        losses.soft_dice(TRUTH, logits_for(PREDICTED), smooth=0.0)
    )
    np.testing.assert_allclose(dice, [2 / 3, 2 / 4, 0.0], atol=1e-5)
    loss = losses.SoftDiceLoss(smooth=0.0)(TRUTH, logits_for(PREDICTED))
    assert float(loss) == pytest.approx(1 - (2 / 3 + 1 / 2 + 0) / 3, abs=1e-5)


def test_focal_loss_by_hand_and_gamma_zero_is_crossentropy():
    logits = np.array([[[[2.0, 0.0, -1.0]]]], np.float32)
    truth = np.array([[[0]]], np.int32)
    p = np.exp(2.0) / (np.exp(2.0) + 1 + np.exp(-1.0))
    focal = losses.SparseFocalLoss(gamma=2.0)(truth, logits)
    assert float(focal) == pytest.approx(-((1 - p) ** 2) * np.log(p), rel=1e-5)
    plain = losses.SparseFocalLoss(gamma=0.0)(truth, logits)
    crossentropy = losses.get_loss("ce")(truth, logits)
    assert float(plain) == pytest.approx(float(crossentropy), rel=1e-5)


def test_crossentropy_dice_is_the_sum_of_its_parts():
    logits = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
    truth = np.random.default_rng(1).integers(0, 3, (2, 4, 4)).astype(np.int32)
    combined = float(losses.CrossentropyDiceLoss()(truth, logits))
    parts = float(losses.get_loss("ce")(truth, logits)) + float(
        losses.SoftDiceLoss()(truth, logits)
    )
    assert combined == pytest.approx(parts, rel=1e-5)


def test_dice_sums_stay_finite_in_half_precision():
    # 64 x 128 x 128 pixels: sums of one class reach 10**6, past float16's
    # 65,504. The loss casts to float32 before summing.
    logits = np.zeros((64, 128, 128, 3), np.float16)
    truth = np.zeros((64, 128, 128), np.int32)
    loss = losses.SoftDiceLoss()(truth, logits)
    assert np.isfinite(float(loss))
    # Uniform probabilities, all pixels class 0: Dice is 1/2 for class 0 and
    # about 0 for the others.
    assert float(loss) == pytest.approx(1 - 0.5 / 3, abs=1e-3)


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_losses_serialize(name):
    loss = losses.get_loss(name)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    logits = np.random.default_rng(0).normal(size=(1, 4, 4, 3)).astype(np.float32)
    truth = np.random.default_rng(1).integers(0, 3, (1, 4, 4)).astype(np.int32)
    assert float(restored(truth, logits)) == pytest.approx(float(loss(truth, logits)))


def test_unknown_loss_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="Unknown loss 'iou'.*'ce', 'dice', 'ce\\+dice'"
    ):
        losses.get_loss("iou")
