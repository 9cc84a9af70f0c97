"""Guards on behaviours whose breaking the rest of the suite would not see:
each test measures the effect itself (the rate a compiled step applied, two
reports' scores, a pixel's colour), not a label or a file name."""

import dataclasses
import math
import os
import types

import keras
import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from tests.conftest import copy_run
from tfseg import files
from tfseg import runs
from tfseg.cli import main as cli_main
from tfseg.config import TrainConfig

agnostic = pytest.mark.backend_agnostic

MOBILENET_035 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def numpy(value):
    return keras.ops.convert_to_numpy(value)


# --------------------------------------------------------------------------
# The rate a compiled step applies


def linear_model():
    """One weight, starting at 0, whose loss (`mean_loss`) has gradient 1.

    With a constant gradient, Adam's bias-corrected step `m / sqrt(v)` is
    exactly 1, so each step moves the weight by the rate it applied."""
    inputs = keras.Input((1,))
    outputs = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inputs)
    return keras.Model(inputs, outputs)


def mean_loss(y_true, y_pred):
    return keras.ops.mean(y_pred)


class KernelTrace(keras.callbacks.Callback):
    """The single kernel value before training and after every batch;
    optionally calls `on_epoch(epoch)` at each epoch's end."""

    def __init__(self, on_epoch=None):
        super().__init__()
        self.values = []
        self.on_epoch = on_epoch

    def kernel(self):
        return float(numpy(self.model.trainable_variables[0]).ravel()[0])

    def on_train_begin(self, logs=None):
        self.values = [self.kernel()]

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(self.kernel())

    def on_epoch_end(self, epoch, logs=None):
        if self.on_epoch:
            self.on_epoch(epoch)

    def applied_rates(self):
        """The rate of each step: the weight's move (the gradient is 1)."""
        return [before - after for before, after in zip(self.values, self.values[1:])]


def cosine_rate(peak, step, total, floor=0.01):
    progress = min(step / total, 1.0)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


@agnostic
def test_the_compiled_step_reads_the_schedule_length_set_during_fit():
    from tfseg.train.modeling import make_optimizer
    from tfseg.train.modeling import set_schedule_length

    config = TrainConfig(
        learning_rate=0.01,
        warmup_epochs=0.0,
        weight_decay=0.0,
        epochs=4,
        encoder_weights="none",
    )
    model = linear_model()
    model.compile(optimizer=make_optimizer(model, config, 1), loss=mean_loss)
    assert not model.run_eagerly

    def replan(epoch):  # as the time budget does, between two epochs
        if epoch == 0:
            set_schedule_length(model, config, 1, epochs=100)

    trace = KernelTrace(on_epoch=replan)
    images, targets = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    model.fit(images, targets, batch_size=1, epochs=4, verbose=0, callbacks=[trace])
    rates = trace.applied_rates()
    assert len(rates) == 4
    # Step 0 ran with the first length (4 steps), the later ones with 100:
    # the compiled step read the new length, not the one it was traced with.
    expected = [cosine_rate(0.01, s, 100) for s in (1, 2, 3)]
    expected = [cosine_rate(0.01, 0, 4), *expected]
    np.testing.assert_allclose(rates, expected, rtol=1e-4)
    # With the first length, step 3 would have been near the floor.
    assert rates[3] > 5 * cosine_rate(0.01, 3, 4)


@agnostic
def test_the_tutorial_recipe_applies_its_constant_rate_from_step_0():
    from tfseg.train.modeling import make_optimizer

    config = TrainConfig.for_recipe("tutorial", encoder_weights="none")
    model = linear_model()
    model.compile(optimizer=make_optimizer(model, config, 4), loss=mean_loss)
    trace = KernelTrace()
    images, targets = np.ones((6, 1), np.float32), np.zeros((6, 1), np.float32)
    model.fit(images, targets, batch_size=1, epochs=1, verbose=0, callbacks=[trace])
    rates = trace.applied_rates()
    # 1.5 epochs of 4 steps: no ramp from 0 at the start, no decay after.
    assert len(rates) == 6
    np.testing.assert_allclose(rates, [config.learning_rate] * 6, rtol=1e-4)


# --------------------------------------------------------------------------
# The encoder's lower rate on a real pretrained model


def test_a_pretrained_mobilenet_encoder_learns_at_a_tenth_of_the_rate(tmp_path):
    weights = SHARED_DATA / "keras_weights" / MOBILENET_035
    if not weights.is_file():
        pytest.skip(f"MobileNetV2 ImageNet weights not found at {weights}")
    from tfseg.train.modeling import build_model
    from tfseg.train.recipe import set_up_optimizer
    from tfseg.train.start import RunStart

    config = TrainConfig(
        model="mobilenet_unet",
        alpha=0.35,
        encoder_weights=str(weights),
        image_size=32,
        batch_size=2,
        warmup_epochs=0.0,  # the first step at the full rate
        weight_decay=0.0,
        model_args={"decoder_filters": [16, 16, 8, 8]},
    )
    assert config.encoder_lr_scale == 0.1  # the recipe's default
    model = build_model(config)
    set_up_optimizer(model, RunStart(config, str(tmp_path), {"epochs_done": 0}), 1)
    # One step, run eagerly only to skip a long graph compilation on CPU: the
    # encoder's scale is applied per variable in the optimizer either way.
    model.run_eagerly = True
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    masks = rng.integers(0, 3, (2, 32, 32, 1)).astype(np.int32)
    before = {v.path: numpy(v) for v in model.trainable_variables}
    model.train_on_batch(images, masks)
    # Adam's first step moves each weight with a gradient by about the rate.
    moved = {
        v.path: float(np.abs(numpy(v) - before[v.path]).max())
        for v in model.trainable_variables
    }
    rate = config.learning_rate
    # MobileNetV2's own layers (ImageNet weights), and the U-Net decoder's.
    mobilenet = ("Conv1/", "bn_Conv1/", "expanded_conv", "block_")
    encoder = [m for path, m in moved.items() if path.startswith(mobilenet)]
    decoder = [m for path, m in moved.items() if not path.startswith(mobilenet)]
    assert len(encoder) > 100 and len(decoder) >= 10
    assert max(encoder) <= 0.1 * rate * 1.01
    assert np.median(encoder) == pytest.approx(0.1 * rate, rel=0.05)
    assert np.median(decoder) == pytest.approx(rate, rel=0.05)


# --------------------------------------------------------------------------
# Flip test-time augmentation in `tfseg evaluate`


def edge_model(size):
    """Logits of a left-right asymmetric model: class pet where the image is
    brighter 2 px to the left than 2 px to the right; background (a constant
    logit of 1) elsewhere; never border. Its flip average is flat: all
    background."""
    inputs = keras.Input((size, size, 3))
    layer = keras.layers.Conv2D(3, (1, 5), padding="same", name="edges")
    model = keras.Model(inputs, layer(inputs))
    kernel = np.zeros((1, 5, 3, 3), np.float32)
    kernel[0, 0, :, 0] = 10 / (3 * 255)
    kernel[0, 4, :, 0] = -10 / (3 * 255)
    layer.set_weights([kernel, np.array([0.0, 1.0, -100.0], np.float32)])
    return model


def test_evaluate_with_flips_scores_the_flipped_logits(tmp_path):
    run_dir = tmp_path / "run"
    config = TrainConfig(
        model="unet",
        encoder_weights="none",
        synthetic=20,
        image_size=32,
        batch_size=4,
        output_dir=str(tmp_path),
    )
    runs.create_run(str(run_dir), {"config": dataclasses.asdict(config)})
    files.save_model(edge_model(32), str(run_dir / runs.MODEL))
    assert cli_main(["evaluate", str(run_dir)]) == 0
    assert cli_main(["evaluate", str(run_dir), "--tta", "flip"]) == 0
    plain = files.read_json(str(run_dir / "metrics.json"))
    flipped = files.read_json(str(run_dir / "metrics_tta-flip.json"))
    assert plain["images"] == flipped["images"] == 10
    for resolution in ("training_resolution", "original_resolution"):
        without, with_flips = plain[resolution], flipped[resolution]
        # Without flips, the edge detector finds pets; with them, its mirror
        # cancels it: background everywhere.
        assert without["iou"][0] > 0.02, without
        assert with_flips["iou"][0] == 0.0, with_flips
        assert abs(without["pixel_accuracy"] - with_flips["pixel_accuracy"]) > 0.03
        assert without["mean_iou"] != with_flips["mean_iou"]


# --------------------------------------------------------------------------
# The time budget's pace


class FixedClock:
    def __init__(self, seconds):
        self.seconds = seconds

    def elapsed(self):
        return self.seconds


def planned_timer(seconds, budget_minutes, planned, periods, replans):
    """An `EpochTimer` with a plan of `planned` epochs and epoch `periods`
    so far (the first the compiling one); no validation, no test images (so
    the report is `REPORT_SECONDS`)."""
    from tfseg.train.budget import EpochTimer

    timer = EpochTimer(
        FixedClock(seconds), budget_minutes, images={}, on_replan=replans.append
    )
    timer.set_params({"epochs": planned})
    model = types.SimpleNamespace(stop_training=False)
    timer.set_model(model)
    timer.planned = planned
    timer.periods = list(periods)
    return timer, model


def test_the_pace_leaves_out_the_compiling_epoch():
    from tfseg.train.budget import BUDGET_SLACK
    from tfseg.train.budget import REPORT_SECONDS

    replans = []
    # The first check after the plan: epoch 0 (compiling) took 50 s, epoch 1
    # 2 s; epoch 2 ends now, at 0 s of a 1 min budget (a fixed clock).
    timer, model = planned_timer(0.0, 1.0, 10, [50.0, 2.0], replans)
    timer.on_epoch_begin(2)
    timer.on_epoch_end(2, {})
    left = 60 * (1 - BUDGET_SLACK) - REPORT_SECONDS
    assert replans == [3 + math.floor(left / 2.0)] == [29]  # 2 s epochs
    assert timer.planned == 29 and not model.stop_training


def test_one_slow_epoch_does_not_cut_the_plan():
    from tfseg.train.budget import BUDGET_SLACK
    from tfseg.train.budget import REPORT_SECONDS

    left = 120 * (1 - BUDGET_SLACK) - 40.0 - REPORT_SECONDS
    planned = 6 + math.floor(left / 2.0)  # what 2 s epochs fit: 41
    replans = []
    # Epochs 1-4 took 2 s, epoch 5 30 s (a hiccup); epoch 5 ends at 40 s.
    timer, model = planned_timer(40.0, 2.0, planned, [50, 2, 2, 2, 2, 30], replans)
    timer.on_epoch_begin(5)
    timer.on_epoch_end(5, {})
    # The median of the last five is 2 s: the plan stands (their mean, 7.6 s,
    # would cut it to 15 epochs).
    assert replans == [] and timer.planned == planned == 41
    assert not model.stop_training


# --------------------------------------------------------------------------
# The weight average in validation


def test_validation_with_ema_scores_the_weight_average(tmp_path):
    import tensorflow as tf

    from tfseg.train.budget import RunClock
    from tfseg.train.fitting import FitLoop
    from tfseg.train.modeling import compile_model
    from tfseg.train.start import RunStart

    def split(count, seed):
        rng = np.random.default_rng(seed)
        images = rng.uniform(0, 255, (count, 16, 16, 3)).astype(np.float32)
        masks = rng.integers(0, 3, (count, 16, 16, 1)).astype(np.int32)
        return tf.data.Dataset.from_tensor_slices((images, masks)).batch(4)

    config = TrainConfig(
        model="unet",
        encoder_weights="none",
        image_size=16,
        batch_size=4,
        epochs=1,
        ema=0.5,
        warmup_epochs=0.0,
        learning_rate=0.05,
        output_dir=str(tmp_path),
    )
    inputs = keras.Input((16, 16, 3))
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(scaled))
    compile_model(model, config, 2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    start = RunStart(config, str(run_dir), {"epochs_done": 0})
    train, val = split(8, 0), split(4, 1)
    record = {"config": dataclasses.asdict(config)}
    images = {"train": 8, "val": 4, "test": 0}
    FitLoop(model, start, (train, val), RunClock({}), 2, images, record).run()
    (row,) = runs.history_rows(str(run_dir))
    logged = {name: float(row[f"val_{name}"]) for name in ("loss", "mean_iou")}

    def scores():
        found = model.evaluate(val, return_dict=True, verbose=0)
        return {name: found[name] for name in logged}

    raw = scores()  # fit leaves the trained weights in the model
    optimizer = model.optimizer
    trained = [numpy(v) for v in optimizer._trainable_variables]
    for variable, average in zip(
        optimizer._trainable_variables, optimizer._model_variables_moving_average
    ):
        variable.assign(average)
    averaged = scores()
    for variable, value in zip(optimizer._trainable_variables, trained):
        variable.assign(value)
    assert logged["loss"] == pytest.approx(averaged["loss"], rel=1e-5)
    assert logged["mean_iou"] == pytest.approx(averaged["mean_iou"], abs=1e-6)
    # The two weights score differently: the log says which was validated.
    assert abs(raw["loss"] - averaged["loss"]) > 1e-3 * abs(averaged["loss"])


# --------------------------------------------------------------------------
# Overlay and legend colours


def test_the_overlay_paints_pets_and_borders_and_leaves_background():
    from tfseg.visualize import CLASS_COLOURS
    from tfseg.visualize import OPACITY
    from tfseg.visualize import overlay
    from tfseg.visualize import overlay_with_legend

    image = np.full((2, 3, 3), 100, np.uint8)
    mask = np.array([[0, 1, 2], [1, 0, 1]])  # pet, background, border

    def blended(colour):
        return ((1 - OPACITY) * 100 + OPACITY * np.asarray(colour)).astype(np.uint8)

    pet, border = blended([255, 140, 0]), blended([0, 200, 255])  # orange, cyan
    np.testing.assert_array_equal(CLASS_COLOURS[0], [255, 140, 0])
    for painted in (overlay(image, mask), overlay_with_legend(image, mask, ["a"] * 3)):
        painted = painted[:2, :3]
        for row, column in ((0, 0), (1, 1)):
            np.testing.assert_array_equal(painted[row, column], pet)
        np.testing.assert_array_equal(painted[0, 2], border)
        for row, column in ((0, 1), (1, 0), (1, 2)):
            np.testing.assert_array_equal(painted[row, column], [100, 100, 100])
    assert pet[0] > pet[1] > pet[2]  # orange-tinted grey


def coloured_runs(row):
    """`(start, colour)` of each run of coloured (not grey) pixels of a row."""
    coloured = row.max(-1).astype(int) - row.min(-1) > 30
    found = []
    for column in np.flatnonzero(coloured):
        if not found or column - found[-1][1] > 1:
            found.append([column, column, tuple(int(c) for c in row[column])])
        else:
            found[-1][1] = column
    return [(start, colour) for start, _, colour in found]


def test_the_legend_colours_match_the_classes():
    from matplotlib.colors import to_rgba

    from tfseg.visualize import CLASS_COLOURS
    from tfseg.visualize import legend_handles
    from tfseg.visualize import overlay_with_legend

    image = np.full((8, 8, 3), 100, np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    names = ["pet", "background", "border", "extra", "other"]
    picture = overlay_with_legend(image, mask, names)
    assert picture.shape[0] == 8 + 16
    row = picture[8 + 8]  # through the middle of the colour boxes
    runs_found = coloured_runs(row)
    # One filled box per painted class, left to right in class order: the
    # first at the strip's start; background's is an outline, not a colour.
    expected = [tuple(int(c) for c in CLASS_COLOURS[i]) for i in (0, 2, 3, 4)]
    assert [colour for _, colour in runs_found] == expected
    assert runs_found[0][0] == 4
    first_box = picture[8 + 6 : 8 + 11, 5:11].reshape(-1, 3)
    assert (first_box == CLASS_COLOURS[0]).all()
    # The figure legend: the same colours by class index.
    handles = legend_handles(3)
    assert [h.get_label() for h in handles][0] == "pet"
    assert handles[0].get_facecolor() == pytest.approx(to_rgba(CLASS_COLOURS[0] / 255))
    assert handles[2].get_facecolor() == pytest.approx(to_rgba(CLASS_COLOURS[2] / 255))
    assert handles[1].get_facecolor()[3] == 0  # background: not painted


# --------------------------------------------------------------------------
# Extending a run stretches its schedule


def adam_state(model, variable):
    optimizer = model.optimizer
    index = optimizer._get_variable_index(variable)
    return numpy(optimizer._momentums[index]), numpy(optimizer._velocities[index])


@pytest.mark.slow
def test_an_extended_resume_trains_on_the_stretched_schedule(finished_run, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    last = os.path.join(run_dir, runs.LAST)
    config, record = runs.read_config(run_dir)
    steps = record["examples"]["train"] // config.batch_size
    assert steps == 1 and config.epochs == 2 and not config.ema
    before = files.load_model(last)
    assert int(numpy(before.optimizer.iterations)) == 2
    weights_before = [numpy(v) for v in before.trainable_variables]
    assert cli_main(["train", "--resume", run_dir, "--epochs", "3"]) == 0
    after = files.load_model(last)
    optimizer = after.optimizer
    assert int(numpy(optimizer.iterations)) == 3
    assert float(numpy(optimizer._total_steps)) == 3.0  # 3 epochs of 1 step
    # The rate the resumed step applied, from AdamW's update of each weight
    # w' = w (1 - decay lr) - lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
    # with t = 3 and the moments m, v after the step.
    t = 3
    correction = math.sqrt(1 - optimizer.beta_2**t) / (1 - optimizer.beta_1**t)
    rates = []
    for variable, w in zip(after.trainable_variables, weights_before):
        m, v = adam_state(after, variable)
        direction = w * optimizer.weight_decay + correction * m / (
            np.sqrt(v) + optimizer.epsilon
        )
        usable = np.abs(direction) > 0.1
        rates.append((w - numpy(variable))[usable] / direction[usable])
    rates = np.concatenate(rates)
    assert rates.size > 100
    # Warm-up 1 step, then the cosine over 3 - 1 steps: step 2 is half way
    # (the old length, 2 steps, would have put it at the floor, 1e-5).
    expected = cosine_rate(config.learning_rate, 2 - 1, 3 - 1)
    assert np.median(rates) == pytest.approx(expected, rel=1e-3)
