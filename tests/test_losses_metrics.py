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


# --------------------------------------------------------------------------
# Void pixels and any number of classes

VOID = metrics.VOID
# Eleven pixels of four classes (and a fifth, absent everywhere). Truth 0,
# 0, 0, 1, 1, 2, 2, 2, then two VOID pixels and a 7 (outside 0..4, left out
# as VOID is); class 3 is predicted once but is in no truth.
VOID_TRUTH = np.array([0, 0, 0, 1, 1, 2, 2, 2, VOID, VOID, 7])
VOID_PREDICTED = np.array([0, 0, 1, 1, 3, 2, 2, 0, 0, 2, 1])
# Rows truth, columns prediction, of the eight scored pixels.
VOID_MATRIX = [
    [2, 1, 0, 0, 0],
    [0, 1, 0, 1, 0],
    [1, 0, 2, 0, 0],
    [0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0],
]
# TP 2, 1, 2, 0; |truth| 3, 2, 3, 0; |prediction| 3, 2, 2, 1; class 4: none.
VOID_IOU = [2 / 4, 1 / 3, 2 / 3, 0 / 1]


def test_confusion_matrix_leaves_void_out_and_scores_by_hand():
    matrix = metrics.ConfusionMatrix(5)
    matrix.update(VOID_TRUTH, VOID_PREDICTED)
    np.testing.assert_array_equal(matrix.matrix, VOID_MATRIX)
    scores = matrix.scores()
    assert scores["ignored_pixels"] == 3
    assert scores["scored_pixels"] == scores["pixels"] == 8
    assert scores["iou"][:4] == pytest.approx(VOID_IOU)
    assert np.isnan(scores["iou"][4]) and np.isnan(scores["dice"][4])
    # Class 3 is predicted, so its IoU of 0 counts; class 4 is left out.
    assert scores["mean_iou"] == pytest.approx(sum(VOID_IOU) / 4)
    assert scores["dice"][:4] == pytest.approx([4 / 6, 2 / 4, 4 / 5, 0.0])
    assert scores["pixel_accuracy"] == scores["global_accuracy"] == 5 / 8
    # Recall of the classes in the truth (0, 1, 2): 2/3, 1/2, 2/3.
    assert scores["class_average_accuracy"] == pytest.approx(
        (2 / 3 + 1 / 2 + 2 / 3) / 3
    )
    # Truth shares 3/8, 2/8, 3/8 (classes 3, 4: none) times IoU.
    assert scores["frequency_weighted_iou"] == pytest.approx(
        3 / 8 * 2 / 4 + 2 / 8 * 1 / 3 + 3 / 8 * 2 / 3
    )


def test_confusion_matrix_of_void_alone_scores_nothing():
    matrix = metrics.ConfusionMatrix(3)
    matrix.update(np.full(4, VOID), np.zeros(4))
    scores = matrix.scores()
    assert scores["ignored_pixels"] == 4 and scores["scored_pixels"] == 0
    for key in ("pixel_accuracy", "class_average_accuracy", "frequency_weighted_iou"):
        assert np.isnan(scores[key]), key


def test_confusion_matrix_refuses_predictions_outside_the_classes():
    matrix = metrics.ConfusionMatrix(3)
    with pytest.raises(ValueError, match="Received predicted class 3; expected"):
        matrix.update(np.array([0, 1]), np.array([0, 3]))


def test_training_metrics_take_class_names_as_safe_metric_names():
    found = [m.name for m in metrics.training_metrics(["Road", "Sky line", "car-park"])]
    assert found[2:] == ["iou_road", "iou_sky_line", "iou_car_park"]
    assert [m.name for m in metrics.training_metrics(3)][2:] == [
        "iou_pet",
        "iou_background",
        "iou_border",
    ]
    with pytest.raises(ValueError, match="give the metric names.*Rename the"):
        metrics.training_metrics(["Car", "car"])


def test_training_metrics_ignore_a_class_inside_the_range():
    # Truth 0, 0, 1, 2 against 0, 1, 1, 1, with background (1) ignored:
    # rows truth, columns prediction [[1, 1, 0], [0, 0, 0], [0, 1, 0]].
    results = {}
    for metric in metrics.training_metrics(3, ignore_class=1):
        metric.update_state(TRUTH[..., None], logits_for(PREDICTED))
        results[metric.name] = float(metric.result())
    assert results["pixel_accuracy"] == pytest.approx(1 / 3)
    # IoU pet 1 / (1 + 1), background 0 / 2, border 0 / 1.
    assert results["mean_iou"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert results["iou_pet"] == pytest.approx(1 / 2)
    assert results["iou_background"] == pytest.approx(0.0)


def test_keras_metrics_of_a_model_match_the_confusion_matrix_with_void():
    # Two images of 1 x 11 pixels: the pixels above, then the same shifted;
    # the 7 is VOID, as the data pipeline makes every void value.
    labels = np.where(VOID_TRUTH == 7, VOID, VOID_TRUTH)
    truth = np.stack([labels, np.roll(labels, 3)])[:, None, :, None]
    predicted = np.stack([VOID_PREDICTED, np.roll(VOID_PREDICTED, 3)])[:, None]
    names = ["Road", "Sky", "Car", "Tree", "Sign"]
    model = keras.Sequential([keras.Input((1, 11, 5)), keras.layers.Identity()])
    model.compile(
        loss=losses.get_loss("ce", ignore_class=VOID),
        metrics=metrics.training_metrics(names, ignore_class=VOID),
    )
    logged = model.evaluate(
        logits_for(predicted, 5), truth, batch_size=1, return_dict=True, verbose=0
    )
    matrix = metrics.ConfusionMatrix(5)
    matrix.update(truth, predicted)
    scores = matrix.scores()
    assert scores["ignored_pixels"] == 6
    assert logged["pixel_accuracy"] == pytest.approx(scores["pixel_accuracy"])
    assert logged["mean_iou"] == pytest.approx(scores["mean_iou"])
    for name, iou in zip(names, scores["iou"]):
        # Keras gives 0 where the ConfusionMatrix gives nan (class 4).
        assert logged[f"iou_{name.lower()}"] == pytest.approx(np.nan_to_num(iou))


def test_pixel_accuracy_leaves_void_out_and_weighs_pixels():
    # Truth 0, 1, VOID, 2; predicted 0, 0, 1, 2: two right of three scored
    # (VOID, outside the classes, is never scored).
    truth = np.array([[[0], [1], [VOID], [2]]])
    logits = logits_for(np.array([[0, 0, 1, 2]]))
    plain = metrics.PixelAccuracy()
    plain.update_state(truth, logits)
    assert float(plain.result()) == pytest.approx(2 / 3)
    # An ignored class inside the range: truth 1 and 2 left, one right.
    without_pets = metrics.PixelAccuracy(ignore_class=0)
    without_pets.update_state(truth, logits)
    assert float(without_pets.result()) == pytest.approx(1 / 2)
    accuracy = metrics.PixelAccuracy(ignore_class=VOID)
    accuracy.update_state(truth, logits)
    assert float(accuracy.result()) == pytest.approx(2 / 3)
    # Weights per pixel: the wrong pixel weighs 3, so 2 right of 5.
    accuracy.reset_state()
    accuracy.update_state(truth, logits, sample_weight=np.array([[1, 3, 1, 1]]))
    assert float(accuracy.result()) == pytest.approx(2 / 5)
    restored = keras.metrics.deserialize(keras.metrics.serialize(accuracy))
    assert restored.ignore_class == VOID and restored.name == "pixel_accuracy"


# Truth of a 2 x 3 image with two VOID pixels, and fixed random logits.
LOSS_TRUTH = np.array([[[0, VOID, 2], [1, 0, VOID]]], np.int32)
LOSS_LOGITS = np.random.default_rng(2).normal(size=(1, 2, 3, 3)).astype(np.float32)
SCORED = LOSS_TRUTH != VOID


def test_crossentropy_ignores_void_by_hand():
    logits = np.zeros((1, 1, 3, 3), np.float32)
    logits[0, 0, 0] = [2.0, 0.0, -1.0]  # truth 0
    logits[0, 0, 1] = [9.0, 9.0, 9.0]  # VOID: counts in nothing
    logits[0, 0, 2] = [0.0, 1.0, 0.0]  # truth 2
    truth = np.array([[[0, VOID, 2]]], np.int32)
    first = np.log(np.exp(2.0) / (np.exp(2.0) + 1 + np.exp(-1.0)))
    second = np.log(1 / (2 + np.e))
    loss = losses.get_loss("ce", ignore_class=VOID)(truth, logits)
    assert float(loss) == pytest.approx(-(first + second) / 2, rel=1e-5)


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_void_pixels_count_in_no_loss(name):
    loss = losses.get_loss(name, ignore_class=VOID)
    value = float(loss(LOSS_TRUTH, LOSS_LOGITS))
    # The same loss of the four scored pixels alone, as a 1 x 4 image.
    alone = losses.get_loss(name)(
        LOSS_TRUTH[SCORED][None, None], LOSS_LOGITS[SCORED][None, None]
    )
    assert value == pytest.approx(float(alone), rel=1e-5)
    # Other predictions at the void pixels only: the same loss.
    at_void = LOSS_LOGITS.copy()
    at_void[~SCORED] = [[8.0, -3.0, 1.0], [-5.0, 0.0, 7.0]]
    assert float(loss(LOSS_TRUTH, at_void)) == pytest.approx(value, rel=1e-6)
    # Another prediction at one scored pixel: another loss.
    at_scored = LOSS_LOGITS.copy()
    at_scored[0, 0, 0] = [-4.0, 4.0, 0.0]
    assert abs(float(loss(LOSS_TRUTH, at_scored)) - value) > 1e-3


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_losses_with_ignore_class_serialize(name):
    loss = losses.get_loss(name, ignore_class=VOID)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert float(restored(LOSS_TRUTH, LOSS_LOGITS)) == pytest.approx(
        float(loss(LOSS_TRUTH, LOSS_LOGITS))
    )


@pytest.mark.parametrize(
    "loss_class",
    [losses.SoftDiceLoss, losses.CrossentropyDiceLoss, losses.SparseFocalLoss],
)
def test_configs_saved_before_ignore_class_still_load(loss_class):
    config = loss_class().get_config()
    del config["ignore_class"]
    assert loss_class.from_config(config).ignore_class is None
