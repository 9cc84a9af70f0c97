"""The training recipe of `tfseg train`: start, devices, model, data, fit, report.

`train(config)` reads top to bottom as the steps of a run. The rules of the
run folder (refuse reuse, atomic files, resume) live in `tfseg.runs`; the
data in `tfseg.data.loading`; devices and precision in `tfseg.devices`; the
model and its optimizer in `tfseg.modeling`; checkpoints in
`tfseg.callbacks`; the test report in `tfseg.evaluate`.

A run is resumable from any finished epoch: `last.keras` holds the model and
its optimizer (so the learning-rate schedule continues where it stopped),
`state.json` the epochs done. `--resume RUN --epochs N` extends a run, with
the schedule rebuilt for the new length.

Across hosts (`--hosts N`, `tfseg.hosts`) every host runs these steps; the
writing host (host 0) alone writes the run folder and the test report.
"""

import contextlib
import dataclasses
import datetime
import importlib.util
import os
import sys
import time

import keras
import numpy as np

from tfseg import devices
from tfseg import hosts
from tfseg import runs
from tfseg.callbacks import EpochTimer
from tfseg.callbacks import RunCheckpoint
from tfseg.callbacks import RunClock
from tfseg.config import MONITOR
from tfseg.config import RESUMABLE_FIELDS
from tfseg.config import TrainConfig
from tfseg.config import flag
from tfseg.modeling import build_model
from tfseg.modeling import compile_model
from tfseg.modeling import encoder_layers
from tfseg.modeling import set_schedule_length
from tfseg.modeling import with_recipe_defaults

# With `--time-budget`, epochs timed before the run's length is fitted: the
# first (which compiles) and one at full pace.
CALIBRATION_EPOCHS = 2


@dataclasses.dataclass
class Start:
    """Where a run starts: its config, folder, state, and whether it resumes."""

    config: TrainConfig
    run_dir: str
    state: dict
    resuming: bool = False
    # The most epochs a time budget may fit (`--epochs` when given).
    epochs_cap: int = None
    explicit: frozenset = frozenset()  # the settings the user gave


def train(config, explicit=None, started=None):
    """Trains, evaluates and reports one run. Returns the run folder.

    Args:
        config: a `TrainConfig`.
        explicit: the names of the settings the user gave (the rest are
            defaults); with `config.resume`, each must agree with the saved
            run, but for `RESUMABLE_FIELDS`. Defaults to the settings that
            differ from `TrainConfig()`.
        started: the `time.monotonic()` a time budget counts from (the
            command line passes its own start, before Keras is imported).
            Defaults to now.

    Raises:
        ValueError: for settings, data or folders that cannot work (with
            the fix); nothing is left on disk by a run that failed to start.
    """
    started = time.monotonic() if started is None else started
    config, explicit = hosts.from_environment(config, explicit)
    if config.hosts > 1:
        config.validate()  # before waiting for the other hosts
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    stamp = hosts.connect(config, stamp)  # host 0's, with several hosts
    with hosts.together():  # an error on one host stops them all
        start = start_run(config, explicit, stamp)
        config = start.config
        keras.utils.set_random_seed(config.seed)
        strategy, record = configure_devices(config)

        def scope():
            return strategy.scope() if strategy else contextlib.nullcontext()

        with scope():  # the model first: a bad size or argument fails at once
            model = load_or_build_model(config, start)
        splits = load_data(config)
        train_data, val_data = make_batches(config, splits, record, start)
        steps = steps_per_epoch(config, splits)
        with scope():
            set_up_optimizer(model, config, start, steps)
    if hosts.is_writer() and start.resuming:
        runs.write_json(os.path.join(start.run_dir, runs.CONFIG), record)
    elif hosts.is_writer():
        runs.create_run(start.run_dir, record)
        print(f"run folder: {start.run_dir}")
    clock = RunClock(start.state, started)
    images = {split: len(examples) for split, examples in splits.items()}
    fit(model, config, start, train_data, val_data, clock, images, steps, record)
    if not hosts.is_writer():
        print(f"host {hosts.index()}: finished; host 0 writes {start.run_dir}")
        return start.run_dir
    hosts.work_alone()  # the report scores the whole test split here
    report(config, start, splits["test"], clock)
    print(
        f"finished in {clock.elapsed() / 60:.1f} min: {start.run_dir} "
        "(metrics.md, curves.png, predictions.png)"
    )
    return start.run_dir


# --------------------------------------------------------------------------
# The steps


def start_run(config, explicit, stamp):
    """A new run's folder (planned, made later; `<stamp>_<model>` unless
    `--run-name`) or the resumed run's state."""
    if explicit is None:
        defaults = dataclasses.asdict(TrainConfig())
        explicit = {
            k for k, v in dataclasses.asdict(config).items() if defaults[k] != v
        }
    config = config.absolute()
    if not config.resume:
        config = with_recipe_defaults(config)  # recorded in config.json
        config.validate()
        run_dir = runs.plan_new_run(config, stamp)
        cap = config.epochs if "epochs" in explicit else None
        return Start(
            config, run_dir, {"epochs_done": 0}, epochs_cap=cap, explicit=explicit
        )
    run_dir = config.resume
    saved, _ = runs.read_config(run_dir)
    given = {name: getattr(config, name) for name in explicit}
    conflicts = saved.conflicts(dataclasses.replace(saved, **given))
    if conflicts:
        listed = "; ".join(
            f"{flag(name)} {new!r} (the run has {old!r})"
            for name, (old, new) in sorted(conflicts.items())
        )
        raise runs.RunError(
            f"--resume {run_dir} continues the run as it was configured, but "
            f"these flags differ from it: {listed}. Drop them (only "
            f"{', '.join(flag(n) for n in RESUMABLE_FIELDS if n != 'resume')} "
            "may change), or start a new run with them."
        )
    resumed = dataclasses.replace(
        saved,
        resume=run_dir,
        **{n: given[n] for n in RESUMABLE_FIELDS if n in given and n != "resume"},
    )
    resumed.validate()
    state = runs.read_state(run_dir)
    done = state["epochs_done"]
    if resumed.epochs < done:
        raise runs.RunError(
            f"{run_dir!r} has trained {done} epochs already; --epochs "
            f"{resumed.epochs} would shorten it. Pass more than {done} to extend it."
        )
    if state.get("finished") and resumed.epochs == saved.epochs:
        raise runs.RunError(
            f"{run_dir!r} is finished ({done} of {saved.epochs} epochs, test "
            f"report written). Train it longer with `tfseg train --resume "
            f"{run_dir} --epochs N` (N > {done}), or score it with `tfseg "
            f"evaluate {run_dir}`."
        )
    if resumed.epochs != saved.epochs:
        print(
            f"extending {run_dir} from {saved.epochs} to {resumed.epochs} epochs: "
            "the learning-rate schedule is rebuilt for the new length"
        )
        state["finished"] = False
    print(f"resuming {run_dir} after epoch {done} of {resumed.epochs}")
    cap = resumed.epochs if "epochs" in explicit else None
    return Start(
        resumed, run_dir, state, resuming=True, epochs_cap=cap, explicit=explicit
    )


def configure_devices(config):
    """Precision policy and data parallelism; returns `(strategy, record)`
    with `record` the content of `config.json`."""
    found = devices.describe_devices()
    precision = devices.choose_precision(config.precision, found)
    keras.config.set_dtype_policy(precision)
    strategy = devices.make_strategy(config.strategy, found)
    strategy_name, replicas = devices.describe_strategy(strategy)
    local_replicas = replicas // hosts.count()  # a host's own devices
    if config.batch_size % local_replicas:
        on_each = " on each host" if hosts.count() > 1 else ""
        raise ValueError(
            f"--batch-size {config.batch_size} does not split evenly over "
            f"{local_replicas} replicas{on_each} ({strategy_name}); pass a "
            f"multiple of {local_replicas}, e.g. "
            f"{local_replicas * max(config.batch_size // local_replicas, 1)}."
        )
    print(
        f"precision: {precision}; devices: "
        f"{', '.join(d['name'] for d in found)}; strategy: "
        f"{strategy_name or 'none'} ({replicas} replica(s))"
    )
    record = {
        "config": dataclasses.asdict(config),
        "precision": precision,
        "strategy": strategy_name,
        "replicas": replicas,
        "hosts": hosts.count(),
        "global_batch_size": config.batch_size * hosts.count(),
        "devices": found,
        "versions": versions(),
    }
    return strategy, record


def load_data(config):
    """Every split of the configured source (see `tfseg.data.loading`)."""
    from tfseg.data.loading import load_splits  # may need TF

    return load_splits(config)


def make_batches(config, splits, record, start):
    """Training and validation batches for the backend in use; records the
    example counts and skipped files in `record`."""
    from tfseg.data.loading import make_batches as batches

    record["examples"] = {split: len(e) for split, e in splits.items()}
    record["skipped"] = {s: e.skipped for s, e in splits.items() if e.skipped}
    options = dict(
        replicas=record["replicas"] // hosts.count(),
        initial_epoch=start.state["epochs_done"],
    )
    train_data = batches(
        config,
        splits["train"],
        training=True,
        shards=hosts.count(),
        shard_index=hosts.index(),
        **options,
    )
    val = splits.get("val")
    val_data = None if val is None else batches(config, val, training=False, **options)
    return train_data, val_data


def steps_per_epoch(config, splits):
    return max(len(splits["train"]) // (config.batch_size * hosts.count()), 1)


def load_or_build_model(config, start):
    """The resumed model from `last.keras` (with its optimizer), or a new one."""
    last = os.path.join(start.run_dir, runs.LAST)
    if start.resuming and os.path.isfile(last):
        return runs.load_model(
            last,
            hint=(
                f"Continue from the best epoch's weights with `cp "
                f"{os.path.join(start.run_dir, runs.BEST)} {last}`, or start "
                "a new run."
            ),
        )
    return build_model(config)


def set_up_optimizer(model, config, start, steps):
    """Compiles a new model; gives a resumed one the schedule for
    `config.epochs` (the same unless `--epochs` extends the run)."""
    if getattr(model, "optimizer", None) is not None:  # loaded: resumed
        set_schedule_length(model, config, steps)
        return
    if (
        "encoder_lr_scale" in start.explicit
        and config.encoder_lr_scale != 1
        and not encoder_layers(model, config)
    ):
        raise ValueError(
            f"--encoder-lr-scale {config.encoder_lr_scale:g} slows the training "
            f"of a pretrained encoder, but {config.model}'s layers all train "
            f"from scratch here (--encoder-weights {config.encoder_weights}). "
            "Drop the flag, or use ImageNet weights (--encoder-weights imagenet "
            "with an encoder that has them: mobilenet_v2, vgg16, resnet50)."
        )
    compile_model(model, config, steps)


def fit(model, config, start, train_data, val_data, clock, images, steps, record):
    """`model.fit` from the first unfinished epoch, checkpointing each one.

    With `--time-budget`, the first `CALIBRATION_EPOCHS` are timed, then
    the run's length is fitted to the minutes left (`fit_to_budget`) and
    the schedule stretched or shrunk to end there; `config.json` records
    the fitted epochs, so a resumed run keeps them (and its budget)."""
    done = start.state["epochs_done"]
    if done >= config.epochs and not needs_fitting(config, start):
        return

    # EpochTimer first: its log entry reaches the CSV.
    def shorten(epochs):  # the time budget's plan, when epochs slow down
        record_plan(model, config, start, steps, record, epochs)

    timer = EpochTimer(clock, config.time_budget, images, shorten)
    timer.planned = start.state.get("fitted_epochs")
    timer.cap = start.epochs_cap
    callbacks = [timer]
    csv_logger = checkpoint = None
    if hosts.is_writer():
        runs.trim_history(start.run_dir, done)
        csv_logger = keras.callbacks.CSVLogger(
            os.path.join(start.run_dir, runs.HISTORY), append=done > 0
        )
        checkpoint = RunCheckpoint(start.run_dir, start.state, clock)
        callbacks += [csv_logger, checkpoint]
    if config.ema:  # validation scores the weight average
        callbacks.insert(0, keras.callbacks.SwapEMAWeights())
    if (
        hosts.is_writer()
        and keras.backend.backend() == "tensorflow"
        and importlib.util.find_spec("tensorboard")
    ):
        logs = os.path.join(start.run_dir, "logs")
        callbacks.append(keras.callbacks.TensorBoard(logs))
    if config.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                MONITOR, patience=config.early_stopping, mode="max"
            )
        )

    def epochs_done():  # on every host (start.state is host 0's)
        return done if timer.epochs_done is None else timer.epochs_done

    def fit_until(epochs):
        if csv_logger:
            csv_logger.append = epochs_done() > 0
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=epochs,
            initial_epoch=epochs_done(),
            callbacks=callbacks,
            shuffle=False,  # the batches shuffle, seeded
            verbose=1 if sys.stdout.isatty() else 2,
        )

    try:
        if needs_fitting(config, start):
            calibration = done + CALIBRATION_EPOCHS
            if start.epochs_cap:
                calibration = min(calibration, start.epochs_cap)
            print(
                f"time budget of {config.time_budget:g} min: timing "
                f"{calibration - done} epoch(s) to fit the run's length"
            )
            fit_until(calibration)
            stopped = epochs_done() < calibration or model.stop_training
            # An epoch: its training and validation, and its checkpoint
            # (not the end of `fit`, which only the timed epochs pay).
            period = timer.train_seconds[-1] + (checkpoint.seconds if checkpoint else 0)
            epochs = fit_to_budget(config, start, timer, period, stopped)
            record_plan(model, config, start, steps, record, epochs)
            timer.planned = epochs
        # The plan may move past the end `fit` was given: then fit again.
        while epochs_done() < config.epochs:
            end = config.epochs
            fit_until(end)
            if epochs_done() < end:
                break  # stopped early (the budget, early stopping)
    except KeyboardInterrupt:
        if not hosts.is_writer():
            raise SystemExit(130) from None
        runs.save_model(model, os.path.join(start.run_dir, runs.INTERRUPTED))
        print(
            f"\nInterrupted after {start.state['epochs_done']} finished "
            f"epoch(s). Checkpoints are in {start.run_dir}; continue with:\n"
            f"  tfseg train --resume {start.run_dir}"
        )
        raise SystemExit(130) from None
    finally:
        # Keras closes the log at the end of training, which a failed epoch
        # (a full disk, say) never reaches.
        if csv_logger and csv_logger.csv_file and not csv_logger.csv_file.closed:
            csv_logger.csv_file.close()


def needs_fitting(config, start):
    """Whether the run's length is still to be fitted to its time budget."""
    return bool(config.time_budget) and "fitted_epochs" not in start.state


def record_plan(model, config, start, steps, record, epochs):
    """Makes `epochs` the run's length: the schedule ends there, and
    `config.json` and `state.json` say so (a resumed run keeps it)."""
    config.epochs = epochs
    set_schedule_length(model, config, steps)
    start.state["fitted_epochs"] = epochs
    record["config"]["epochs"] = epochs
    if hosts.is_writer():
        runs.write_json(os.path.join(start.run_dir, runs.CONFIG), record)
        runs.write_json(os.path.join(start.run_dir, runs.STATE), start.state)


def fit_to_budget(config, start, timer, period, stopped):
    """The run's length in epochs: those done, and as many more epochs of
    `period` seconds as fit in the budget's minutes left after the test
    report (at most `start.epochs_cap`)."""
    done = timer.epochs_done  # the timed epochs have ended
    reserve = timer.report_estimate()
    more = 0 if stopped else timer.epochs_that_fit(done, period) - done
    more = hosts.first_host(more)  # every host trains as many epochs
    epochs = done + more
    if start.epochs_cap:
        epochs = min(epochs, start.epochs_cap)
    if more == 0:
        print(
            f"time budget of {config.time_budget:g} min: no time for more "
            f"epochs after {done} (an epoch takes {period:.1f} s, the test "
            f"report about {reserve:.0f} s), so the learning rate did not "
            "decay; give more minutes for a better model"
        )
    else:
        print(
            f"time budget of {config.time_budget:g} min: {epochs} epochs fit "
            f"({period:.1f} s an epoch, about {reserve:.0f} s for the test "
            f"report); the learning-rate schedule now ends at epoch {epochs}"
        )
    return epochs


def report(config, start, test, clock):
    """The test report of the best model; marks the run finished."""
    from tfseg.evaluate import report_run

    began = clock.elapsed()
    report_run(start.run_dir, test, config)
    start.state["finished"] = True
    start.state["seconds"] = round(clock.elapsed(), 3)
    start.state["report_seconds"] = round(start.state["seconds"] - began, 3)
    runs.write_json(os.path.join(start.run_dir, runs.STATE), start.state)


def versions():
    found = {
        "python": sys.version.split()[0],
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
    }
    for name in ("tensorflow", "jax"):
        module = sys.modules.get(name)  # None where imports of it are blocked
        if module is not None:
            found[name] = module.__version__
    return found
