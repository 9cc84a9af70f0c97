"""The training recipe of `tfseg train`: start, devices, model, data, fit, report.

`train(config)` reads top to bottom as the steps of a run; each step returns
what it decides. Where each rule lives:

- starting and resuming (which flags a resume may change): `start`;
- devices and precision: `devices`; several hosts: `hosts`;
- the model, its loss, metrics and optimizer: `modeling`, `optimizer`;
- the data: `tfseg.data.loading`;
- the fit loop, checkpoints and Ctrl-C: `fitting`, `callbacks`;
- the time budget: `budget`;
- the run folder's files: `tfseg.runs`; the test report: `tfseg.evaluate`.

A run is resumable from any finished epoch: `last.keras` holds the model and
its optimizer (so the learning-rate schedule continues where it stopped),
`state.json` the epochs done. `--resume RUN --epochs N` extends a run, with
the schedule rebuilt for the new length.

Across hosts (`--hosts N`, `tfseg.train.hosts`) every host runs these steps;
the writing host (host 0) alone writes the run folder and the test report.
"""

import contextlib
import dataclasses
import datetime
import os
import sys
import time

import keras

from tfseg import environment
from tfseg import files
from tfseg import runs
from tfseg.data.loading import check_readable
from tfseg.models.registry import pretrained_encoders
from tfseg.train import devices
from tfseg.train import hosts
from tfseg.train.budget import RunClock
from tfseg.train.fitting import FitLoop
from tfseg.train.modeling import build_model
from tfseg.train.modeling import compile_model
from tfseg.train.modeling import encoder_layers
from tfseg.train.modeling import set_schedule_length
from tfseg.train.start import start_run


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

        check_readable(config)  # before the model, which takes a while on JAX
        with scope():  # the model first: a bad size or argument fails at once
            model = load_or_build_model(start)
        splits = load_data(config)
        batches = make_batches(config, splits, record["replicas"], start)
        record.update(describe_splits(config, splits))
        steps = steps_per_epoch(config, splits)
        with scope():
            set_up_optimizer(model, start, steps)
    start = write_run_folder(start, record)
    clock = RunClock(start.state, started)
    images = images_to_score(config, splits)
    state = FitLoop(model, start, batches, clock, steps, images, record).run()
    if not hosts.is_writer():
        print(f"host {hosts.index()}: finished; host 0 writes {start.run_dir}")
        return start.run_dir
    hosts.work_alone()  # the report scores the whole test split here
    report(start, state, splits["test"], clock)
    print(
        f"finished in {clock.elapsed() / 60:.1f} min: {start.run_dir} "
        "(metrics.md, curves.png, predictions.png)"
    )
    return start.run_dir


# --------------------------------------------------------------------------
# The steps


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


def load_or_build_model(start):
    """The resumed model from `last.keras` (with its optimizer), or a new one."""
    last = os.path.join(start.run_dir, runs.LAST)
    if start.resuming and os.path.isfile(last):
        return files.load_model(
            last,
            hint=(
                f"Continue from the best epoch's weights with `cp "
                f"{os.path.join(start.run_dir, runs.BEST)} {last}`, or start "
                "a new run."
            ),
        )
    return build_model(start.config)


def load_data(config):
    """Every split of the configured source (see `tfseg.data.loading`)."""
    from tfseg.data.loading import load_splits  # may need TF

    return load_splits(config)


def make_batches(config, splits, replicas, start):
    """`(train, validation)` batches for the backend in use (validation is
    `None` without a validation split); `replicas` over every host."""
    from tfseg.data import loading  # may need TF

    options = dict(replicas=replicas // hosts.count(), initial_epoch=start.epochs_done)
    train_data = loading.make_batches(
        config,
        splits["train"],
        training=True,
        shards=hosts.count(),
        shard_index=hosts.index(),
        **options,
    )
    val = splits.get("val")
    val_data = (
        None
        if val is None
        else loading.make_batches(config, val, training=False, **options)
    )
    return train_data, val_data


def describe_splits(config, splits):
    """What `config.json` records of the data: example counts, skipped
    files, and the class weights computed (`median-frequency`)."""
    from tfseg.data.loading import training_class_weights

    found = {
        "examples": {split: len(e) for split, e in splits.items()},
        "skipped": {s: e.skipped for s, e in splits.items() if e.skipped},
    }
    if config.class_weights is not None:
        found["class_weights"] = training_class_weights(config, splits["train"])
    return found


def images_to_score(config, splits):
    """`{split: images}`, by which the budget foresees the test report from
    validation's pace; with `--crop`, validation scores windows and the
    report whole images, so the test split counts in window-sized images."""
    images = {split: len(examples) for split, examples in splits.items()}
    if config.crop and "test" in images:
        (height, width), (crop_height, crop_width) = (
            config.image_shape,
            config.crop_shape,
        )
        images["test"] *= (height * width) / (crop_height * crop_width)
    return images


def steps_per_epoch(config, splits):
    return max(len(splits["train"]) // (config.batch_size * hosts.count()), 1)


def set_up_optimizer(model, start, steps):
    """Compiles a new model; gives a resumed one the schedule for
    `config.epochs` (the same unless `--epochs` extends the run)."""
    config = start.config
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
            f"with an encoder that has them: {', '.join(pretrained_encoders())})."
        )
    compile_model(model, config, steps)


def write_run_folder(start, record):
    """Makes a new run's folder with its `config.json` (a resumed run's is
    rewritten: devices and versions may have changed); host 0 alone.
    Returns the `RunStart` with the folder made (a picked name may have
    been numbered, `runs.create_run`)."""
    if not hosts.is_writer():
        return start
    if start.resuming:
        files.write_json(os.path.join(start.run_dir, runs.CONFIG), record)
        return start
    numbered = not start.config.run_name
    start = dataclasses.replace(
        start, run_dir=runs.create_run(start.run_dir, record, numbered)
    )
    print(f"run folder: {start.run_dir}")
    return start


def report(start, state, test, clock):
    """The test report of the best model; marks the run finished (and drops
    the `interrupted.keras` of a Ctrl-C that the run has since trained past)."""
    from tfseg.evaluate import report_run

    began = clock.elapsed()
    report_run(start.run_dir, test, start.config)
    seconds = round(clock.elapsed(), 3)
    state = {
        **state,
        "finished": True,
        "seconds": seconds,
        "report_seconds": round(seconds - began, 3),
    }
    files.write_json(os.path.join(start.run_dir, runs.STATE), state)
    interrupted = os.path.join(start.run_dir, runs.INTERRUPTED)
    if os.path.isfile(interrupted):
        os.remove(interrupted)


def versions():
    """`config.json`'s versions: those of `tfseg.environment`, with the
    backend Keras runs on; TensorFlow and JAX only where this run imported
    them (a run without TensorFlow records none, though it is installed)."""
    found = {**environment.versions(), "backend": keras.backend.backend()}
    for name in ("tensorflow", "jax"):
        if sys.modules.get(name) is None:  # None where imports are blocked
            found.pop(name, None)
    return found
