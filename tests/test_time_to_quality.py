"""The parts of the time-to-quality recipe: the optimizer (schedule of a
changeable length, the encoder's lower rate, the weight average), the time
budget that shapes a run, flip test-time augmentation, named recipes."""

import math
import os

import keras
import numpy as np
import pytest

from tests.conftest import TINY
from tests.conftest import copy_run
from tests.conftest import small_model_flags
from tfseg import files
from tfseg import runs
from tfseg.cli import build_parser
from tfseg.cli import main as cli_main
from tfseg.cli import train_config
from tfseg.config import RECIPES
from tfseg.config import TrainConfig
from tfseg.inference import model_logits
from tfseg.train.budget import EpochTimer
from tfseg.train.budget import RunClock
from tfseg.train.callbacks import RunCheckpoint
from tfseg.train.optimizer import SegmentationAdamW

agnostic = pytest.mark.backend_agnostic


def current_rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


@agnostic
def test_schedule_warms_up_decays_and_changes_length_in_place():
    optimizer = SegmentationAdamW(1e-2, warmup_steps=10, total_steps=110)
    optimizer.build([keras.Variable(np.zeros(2, np.float32))])
    expected = {
        0: 0.0,
        5: 5e-3,  # half way up the warm-up
        10: 1e-2,  # the peak
        60: 1e-2 * (0.01 + 0.99 * 0.5),  # half way down the cosine
        110: 1e-4,  # the floor, 1% of the peak
        500: 1e-4,
    }
    for step, rate in expected.items():
        optimizer.iterations.assign(step)
        assert current_rate(optimizer) == pytest.approx(rate, rel=1e-5), step
        assert optimizer.learning_rate_at(step) == pytest.approx(rate, rel=1e-5)
    # A new length is a variable's value: the compiled step reads it.
    optimizer.set_total_steps(210)
    optimizer.iterations.assign(110)
    assert current_rate(optimizer) == pytest.approx(1e-2 * (0.01 + 0.99 * 0.5))
    assert optimizer.total_steps == 210
    constant = SegmentationAdamW(1e-3, warmup_steps=4, schedule="constant")
    constant.build([keras.Variable(np.zeros(2, np.float32))])
    constant.iterations.assign(2)
    assert current_rate(constant) == pytest.approx(5e-4)
    constant.iterations.assign(1000)
    assert current_rate(constant) == pytest.approx(1e-3)


def two_layer_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4, name="encoder_dense")(inputs)
    outputs = keras.layers.Dense(2, name="decoder_dense")(hidden)
    return keras.Model(inputs, outputs)


@agnostic
def test_the_encoder_learns_at_its_fraction_of_the_rate():
    model = two_layer_model()
    optimizer = SegmentationAdamW(
        1e-2,
        total_steps=100,
        encoder_layers=["encoder_dense"],
        encoder_scale=0.1,
        weight_decay=0.0,
    )
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    grads = [np.ones(v.shape, "float32") for v in model.trainable_variables]
    optimizer.apply(grads, model.trainable_variables)
    moved = {
        v.path: float(np.abs(keras.ops.convert_to_numpy(v) - b).max())
        for v, b in zip(model.trainable_variables, before)
    }
    # Adam's first step moves each weight by the rate (the step's m / sqrt(v)
    # is 1 for a gradient of 1); iteration 0 of the cosine is the peak.
    assert moved["decoder_dense/kernel"] == pytest.approx(1e-2, rel=1e-3)
    assert moved["encoder_dense/kernel"] == pytest.approx(1e-3, rel=1e-3)
    assert moved["encoder_dense/bias"] == pytest.approx(1e-3, rel=1e-3)


def fit_epochs(model, images, labels, first, last, callbacks=()):
    model.fit(
        images,
        labels,
        batch_size=4,
        epochs=last,
        initial_epoch=first,
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks),
    )


@agnostic
def test_an_ema_two_rate_run_resumes_to_the_unbroken_runs_weights(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 4)).astype(np.float32)
    labels = rng.integers(0, 2, 16)

    def compiled():
        keras.utils.set_random_seed(1)
        model = two_layer_model()
        model.compile(
            SegmentationAdamW(
                1e-2,
                warmup_steps=2,
                total_steps=16,
                encoder_layers=["encoder_dense"],
                encoder_scale=0.1,
                use_ema=True,
                ema_momentum=0.8,
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    def checkpoint(folder):
        folder.mkdir()
        return [keras.callbacks.SwapEMAWeights(), RunCheckpoint(str(folder), {})]

    unbroken = compiled()
    fit_epochs(unbroken, images, labels, 0, 4, checkpoint(tmp_path / "unbroken"))
    broken = compiled()
    fit_epochs(broken, images, labels, 0, 2, checkpoint(tmp_path / "broken"))
    resumed = files.load_model(tmp_path / "broken" / runs.LAST)
    assert isinstance(resumed.optimizer, SegmentationAdamW)
    assert resumed.optimizer.encoder_scale == 0.1
    fit_epochs(resumed, images, labels, 2, 4, checkpoint(tmp_path / "resumed"))
    for name in ("unbroken", "resumed"):
        saved = files.load_model(tmp_path / name / runs.LAST)
        for mine, theirs in zip(
            saved.optimizer.variables, unbroken.optimizer.variables
        ):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs)
            )
    for mine, theirs in zip(resumed.weights, unbroken.weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs)
        )
    # fit leaves the trained weights in the model, not the average.
    average = resumed.optimizer._model_variables_moving_average
    assert not np.allclose(
        keras.ops.convert_to_numpy(average[0]),
        keras.ops.convert_to_numpy(resumed.trainable_variables[0]),
    )


@agnostic
def test_best_keras_holds_the_weight_average(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 4)).astype(np.float32)
    labels = rng.integers(0, 2, 16)
    keras.utils.set_random_seed(1)
    model = two_layer_model()
    model.compile(
        SegmentationAdamW(1e-2, total_steps=8, use_ema=True, ema_momentum=0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    callback = RunCheckpoint(str(tmp_path), {})
    callback.set_model(model)
    fit_epochs(model, images, labels, 0, 2)
    callback.on_epoch_end(1, {"val_mean_iou": 0.5})
    best = files.load_model(tmp_path / runs.BEST)
    average = model.optimizer._model_variables_moving_average
    for saved, expected in zip(best.trainable_variables, average):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(expected)
        )
    # The model itself keeps training from its own weights.
    assert not np.allclose(
        keras.ops.convert_to_numpy(model.trainable_variables[0]),
        keras.ops.convert_to_numpy(average[0]),
    )
    assert callback.state["best_epoch"] == 2


def test_a_spent_budget_stops_at_the_next_epoch_end():
    def stops(spent):
        timer = EpochTimer(RunClock({"seconds": spent}), budget_minutes=1.0)
        timer.set_params({"epochs": 10})
        model = two_layer_model()
        model.stop_training = False  # as fit sets it
        timer.set_model(model)
        timer.on_epoch_begin(0)
        timer.on_epoch_end(0, {})
        return timer.model.stop_training

    assert stops(120.0)  # spent before this process: over 1 min
    assert not stops(0.0)


def test_slower_epochs_shorten_the_plan_and_its_schedule():
    shortened = []
    clock = RunClock({"seconds": 30.0})
    timer = EpochTimer(clock, budget_minutes=1.0, on_replan=shortened.append)
    timer.set_params({"epochs": 20})
    model = two_layer_model()
    model.stop_training = False
    timer.set_model(model)
    timer.planned = 20
    timer.periods = [20.0, 4.0, 4.0]  # the compiling epoch, then 4 s each
    timer.on_epoch_begin(3)
    timer.on_epoch_end(3, {})
    # About 60 * 0.97 - 30 - 5 (report) = 23.2 s left: 5 more epochs of 4 s.
    assert shortened == [9] and timer.planned == 9
    assert not model.stop_training
    clock.before = 56.0  # then epochs take all the time: stop now
    timer.on_epoch_begin(4)
    timer.on_epoch_end(4, {})
    assert shortened == [9, 5] and model.stop_training


def test_faster_epochs_move_the_plan_past_fits_end_up_to_the_cap():
    moved = []
    timer = EpochTimer(RunClock({}), budget_minutes=1.0, on_replan=moved.append)
    timer.set_params({"epochs": 6})  # fit was given the first plan: 6
    model = two_layer_model()
    model.stop_training = False
    timer.set_model(model)
    timer.planned = 6
    timer.periods = [20.0, 2.0, 2.0]
    timer.on_epoch_begin(3)
    timer.on_epoch_end(3, {})
    assert moved and moved[-1] > 6 and not model.stop_training
    timer.cap = 8  # --epochs 8
    timer.on_epoch_end(3, {})
    assert moved[-1] == 8


@pytest.mark.slow
def test_a_time_budget_fits_the_runs_length_and_ends_the_schedule(tmp_path):
    budget = 0.4  # minutes: 2 timed epochs of TINY take a few seconds
    flags = [*TINY, *small_model_flags("unet"), "--time-budget", str(budget)]
    flags += ["--output-dir", str(tmp_path), "--run-name", "budget"]
    assert cli_main(["train", *flags]) == 0
    run_dir = tmp_path / "budget"
    state = files.read_json(str(run_dir / runs.STATE))
    record = files.read_json(str(run_dir / runs.CONFIG))
    fitted = state["fitted_epochs"]
    assert fitted > 2  # timed 2, then fitted more
    assert record["config"]["epochs"] == fitted == state["epochs_done"]
    assert len(runs.history_rows(str(run_dir))) == fitted
    assert state["seconds"] < budget * 60 * 1.15, state  # test report included
    # The schedule was stretched to end at the last epoch: its rate decayed.
    model = files.load_model(run_dir / runs.LAST)
    optimizer = model.optimizer
    steps = int(keras.ops.convert_to_numpy(optimizer.iterations))
    assert optimizer.total_steps == steps == fitted * (record["examples"]["train"] // 4)
    floor = record["config"]["learning_rate"] * 0.01
    assert current_rate(optimizer) == pytest.approx(floor, rel=1e-3)


def test_a_resumed_budgeted_run_keeps_its_budget_and_length(finished_run, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    record = files.read_json(os.path.join(run_dir, runs.CONFIG))
    record["config"]["time_budget"] = 0.5
    files.write_json(os.path.join(run_dir, runs.CONFIG), record)
    state = files.read_json(os.path.join(run_dir, runs.STATE))
    # As if 2 fitted epochs had taken all of the 30 s.
    state.update(fitted_epochs=2, seconds=30.0)
    files.write_json(os.path.join(run_dir, runs.STATE), state)
    assert cli_main(["train", "--resume", run_dir, "--epochs", "4"]) == 0
    state = files.read_json(os.path.join(run_dir, runs.STATE))
    record = files.read_json(os.path.join(run_dir, runs.CONFIG))
    assert record["config"]["time_budget"] == 0.5
    # Spent already: one epoch (the first of the process is never cut
    # short), then the budget stops it; the length is not fitted again.
    assert state["epochs_done"] == 3
    assert state["fitted_epochs"] == 2


@agnostic
def test_flip_tta_averages_the_mirrored_logits():
    class Ramp:
        """Logits that grow from left to right: not mirror-symmetric."""

        def __call__(self, images, training=False):
            width = images.shape[2]
            ramp = np.arange(width, dtype=np.float32)[None, None, :, None]
            return images[..., :2] / 255 + ramp

    images = np.random.default_rng(0).uniform(0, 255, (2, 4, 6, 3)).astype(np.float32)
    plain = model_logits(Ramp(), images)
    flipped = model_logits(Ramp(), images, "flip")
    mirrored = images[:, :, ::-1]
    expected = (Ramp()(images) + Ramp()(mirrored)[:, :, ::-1]) / 2
    np.testing.assert_allclose(flipped, expected, rtol=1e-6)
    np.testing.assert_allclose(plain, Ramp()(images))
    # The ramp's mirror averages to a flat (width - 1) / 2.
    np.testing.assert_allclose(flipped - images[..., :2] / 255 * 1, 2.5, rtol=1e-6)


def test_evaluate_with_flips_writes_a_separate_report(finished_run, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    plain = files.read_json(os.path.join(run_dir, "metrics.json"))
    assert cli_main(["evaluate", run_dir, "--tta", "flip"]) == 0
    flipped = files.read_json(os.path.join(run_dir, "metrics_tta-flip.json"))
    assert flipped["tta"] == "flip" and "tta" not in plain
    assert files.read_json(os.path.join(run_dir, "metrics.json")) == plain
    assert flipped["images"] == plain["images"]
    markdown = (tmp_path / "copy" / "metrics_tta-flip.md").read_text()
    assert "with flip test-time augmentation" in markdown
    out = tmp_path / "masks"
    image = tmp_path / "pet.png"
    from PIL import Image

    Image.fromarray(np.full((30, 20, 3), 90, np.uint8)).save(image)
    assert (
        cli_main(["predict", run_dir, str(image), "--out", str(out), "--tta", "flip"])
        == 0
    )
    assert (out / "pet_mask.png").is_file()


def parsed(*flags):
    return train_config(build_parser().parse_args(["train", *flags]))


def test_recipes_set_their_defaults_and_flags_override_them():
    config, given = parsed("--recipe", "tutorial", "--epochs", "3")
    tutorial = RECIPES["tutorial"]
    assert config.recipe == "tutorial" and config.epochs == 3
    assert config.alpha == tutorial["alpha"] == 1.0
    assert config.freeze_encoder and config.schedule == "constant"
    assert config.batch_size == 64 and config.loss == "ce"
    assert given == {"recipe", "epochs"}
    default, given = parsed()
    assert default == TrainConfig() and given == set()
    assert default.recipe == "tfseg" and default.loss == "ce+dice"
    with pytest.raises(ValueError, match="--recipe must be one of"):
        TrainConfig.for_recipe("fast")


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"ema": 1.0}, "--ema is the weight average's momentum"),
        ({"encoder_lr_scale": 0.0}, "--encoder-lr-scale"),
        ({"time_budget": -1.0}, "--time-budget is minutes"),
        ({"early_stopping": -2}, "--early-stopping is a patience"),
        ({"schedule": "linear"}, "--schedule must be one of"),
    ],
)
def test_impossible_recipe_settings_are_refused(changes, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**changes).validate()


def test_mobilenet_encoders_default_to_the_recipes_alpha_and_decoder():
    from tfseg.train.modeling import build_model
    from tfseg.train.modeling import with_recipe_defaults

    model = build_model(TrainConfig(image_size=64, encoder_weights="none"))
    # alpha 0.5: the last block projects to 160 channels (320 at alpha 1.0).
    assert model.get_layer("block_16_project").output.shape[-1] == 160
    # The recipe's decoder, deepest stage first: 128 filters (tutorial: 512).
    first = model.get_layer("decoder_stride16_convtranspose")
    assert first.output.shape[-1] == 128
    resolved = with_recipe_defaults(TrainConfig())
    assert resolved.alpha == 0.5
    assert resolved.model_args == {"decoder_filters": [128, 64, 32, 16]}
    given = TrainConfig(model_args={"decoder_filters": [64, 32, 16, 8]})
    assert with_recipe_defaults(given).model_args == given.model_args
    tutorial = with_recipe_defaults(TrainConfig.for_recipe("tutorial"))
    assert tutorial.model_args == {} and tutorial.alpha == 1.0
    assert math.isclose(
        model.count_params(),
        build_model(
            TrainConfig(image_size=64, encoder_weights="none", alpha=0.5)
        ).count_params(),
    )
