"""Training: precision policy, devices, compile, fit, checkpoints, resume.

`train(config)` runs one training run into a run folder:

    runs/<time>_<model>/
        config.json     resolved configuration, versions, precision, devices
        state.json      epochs finished, best score (written after each epoch)
        history.csv     one row per epoch (Keras CSVLogger)
        last.keras      model + optimizer after the last finished epoch
        best.keras      model + optimizer at the best validation mean IoU
        model.keras     the best model without compile state: reloads with
                        keras.models.load_model anywhere, no tfseg import
        metrics.json    test scores (also metrics.md), predictions.png,
        curves.png      and logs/ for TensorBoard (TensorFlow backend)

Checkpoints are written to a temporary name and renamed, so a crash never
leaves a broken file; `resume` continues from the last finished epoch with
the same learning-rate schedule (the optimizer's step count is saved).
"""

import contextlib
import csv
import dataclasses
import datetime
import functools
import importlib.util
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

from tfseg import losses
from tfseg import metrics
from tfseg.models import create_model
from tfseg.models import model_arguments
from tfseg.models import model_defaults

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "none", "mirrored", "multiworker")
MONITOR = "val_mean_iou"
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; saved as `config.json`.

    Attributes mirror the flags of `train_pet.py` (`--image-size` sets
    `image_size`). `encoder_weights="auto"` means ImageNet weights for
    pretrained encoders and none for models trained from scratch.
    """

    model: str = "mobilenet_unet"
    model_args: dict = dataclasses.field(default_factory=dict)
    encoder: str = None
    alpha: float = None
    data_dir: str = None
    data_npz: str = None
    synthetic: int = 0
    image_size: int = 128
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    loss: str = "ce"
    class_weights: tuple = None
    precision: str = "auto"
    strategy: str = "auto"
    encoder_weights: str = "auto"
    freeze_encoder: bool = False
    augment: bool = True
    val_fraction: float = 0.1
    max_examples: int = None
    binary: bool = False
    skip_bad: bool = False
    cache_dir: str = None
    early_stopping: int = 0
    time_budget: float = None
    seed: int = 0
    output_dir: str = "runs"
    run_name: str = None
    resume: str = None

    @property
    def num_classes(self):
        return 2 if self.binary else 3

    def validate(self):
        """Raises `ValueError` for a setting that cannot work, saying why."""
        checks = [
            (self.precision in PRECISIONS, f"--precision must be one of {PRECISIONS}"),
            (self.strategy in STRATEGIES, f"--strategy must be one of {STRATEGIES}"),
            (
                self.loss in losses.LOSS_NAMES,
                f"--loss must be one of {losses.LOSS_NAMES}",
            ),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.image_size >= 32, "--image-size must be at least 32"),
            (self.learning_rate > 0, "--learning-rate must be positive"),
            (0 <= self.val_fraction < 1, "--val-fraction must be in [0, 1)"),
            (
                sum(map(bool, (self.data_dir, self.data_npz, self.synthetic))) <= 1,
                "--data-dir, --data-npz and --synthetic are different sources; "
                "pass one of them",
            ),
            (
                not (self.data_npz and self.cache_dir),
                "--cache-dir caches decoded images; --data-npz data is decoded "
                "already, so drop --cache-dir",
            ),
            (
                self.class_weights is None
                or len(self.class_weights) == self.num_classes,
                f"--class-weights needs {self.num_classes} values (one per class)",
            ),
            (
                self.class_weights is None or self.loss != "dice",
                "--class-weights weight pixels of the ce, ce+dice and focal losses; "
                "Dice is class-balanced already",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message}; received {self._summary()}.")

    def _summary(self):
        return ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items())


# --------------------------------------------------------------------------
# Precision and devices


def describe_devices():
    """The accelerators the Keras backend sees.

    Returns:
        list of dicts `{"kind": "GPU"|"TPU"|"CPU", "name": str,
        "compute_capability": (major, minor) or None}`.
    """
    backend = keras.backend.backend()
    devices = []
    if backend == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415 - TensorFlow backend only

        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            devices.append(
                {
                    "kind": "GPU",
                    "name": details.get("device_name", gpu.name),
                    "compute_capability": details.get("compute_capability"),
                }
            )
    elif backend == "jax":
        import jax  # noqa: PLC0415 - JAX backend only

        for device in jax.devices():
            if device.platform == "cpu":
                continue
            capability = getattr(device, "compute_capability", None)
            if isinstance(capability, str):
                capability = tuple(int(part) for part in capability.split("."))
            devices.append(
                {
                    "kind": device.platform.upper(),
                    "name": getattr(device, "device_kind", str(device)),
                    "compute_capability": capability,
                }
            )
    return devices or [
        {
            "kind": "CPU",
            "name": platform.processor() or "cpu",
            "compute_capability": None,
        }
    ]


def choose_precision(requested, devices):
    """The dtype policy for `requested` on `devices` (see `describe_devices`).

    `"auto"`: `mixed_bfloat16` on GPUs of compute capability 8.0 and up (and
    TPUs), `mixed_float16` on 7.x GPUs (Keras adds loss scaling), float32
    otherwise: mixed precision is several times slower on CPUs.
    """
    if requested != "auto":
        return requested
    kinds = {device["kind"] for device in devices}
    if kinds == {"TPU"}:
        return "mixed_bfloat16"
    if kinds != {"GPU"}:
        return "float32"
    capabilities = [tuple(d["compute_capability"] or (0, 0)) for d in devices]
    if min(capabilities) >= (8, 0):
        return "mixed_bfloat16"
    if min(capabilities) >= (7, 0):
        return "mixed_float16"
    return "float32"


def make_strategy(name, devices):
    """A `tf.distribute` strategy (TensorFlow backend) or `None`.

    `"auto"` mirrors over the local GPUs when there are several; on JAX,
    several devices get `keras.distribution.DataParallel` instead.
    """
    gpus = [device for device in devices if device["kind"] == "GPU"]
    backend = keras.backend.backend()
    if name == "multiworker":
        # Checked with Keras 3.15 / TensorFlow 2.21 on two local workers: fit
        # fails while building the model from a batch averaged over workers,
        # and again averaging the scalar logs of each step.
        raise ValueError(
            "--strategy multiworker: Keras 3's fit does not train under "
            "tf.distribute.MultiWorkerMirroredStrategy (keras-team/keras"
            "#20585), and tfseg does not set up multi-host JAX. Train on one "
            "host with --strategy mirrored (all its GPUs), or with the JAX "
            "backend, which spreads batches over all local devices."
        )
    if backend == "jax":
        if name == "mirrored" or (name == "auto" and len(gpus) > 1):
            keras.distribution.set_distribution(keras.distribution.DataParallel())
        return None
    if name == "none" or (name == "auto" and len(gpus) < 2):
        return None
    if backend != "tensorflow":
        raise ValueError(f"--strategy {name} needs the TensorFlow or JAX backend.")
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow backend only

    return tf.distribute.MirroredStrategy()


def describe_strategy(strategy):
    """`(name, replicas)` of the data parallelism in use.

    The `tf.distribute` strategy on TensorFlow, the Keras distribution (set
    by `make_strategy`) on JAX, or `(None, 1)`.
    """
    if strategy is not None:
        return type(strategy).__name__, strategy.num_replicas_in_sync
    distribution = keras.distribution.distribution()
    if distribution is None:
        return None, 1
    return type(distribution).__name__, distribution.device_mesh.devices.size


# --------------------------------------------------------------------------
# Files


def atomic_write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp_")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def atomic_save_model(model, path, **kwargs):
    """`model.save(path)` through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".tmp_{os.getpid()}_{os.path.basename(path)}")
    model.save(temporary, **kwargs)
    os.replace(temporary, path)


def read_json(path, default=None):
    if not os.path.isfile(path):
        return default
    with open(path) as file:
        return json.load(file)


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: `last.keras`, `best.keras` when better, `state.json`."""

    def __init__(self, run_dir, state):
        super().__init__()
        self.run_dir = run_dir
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        score = logs.get(MONITOR)
        improved = score is not None and score > self.state.get("best_score", -math.inf)
        atomic_save_model(self.model, os.path.join(self.run_dir, "last.keras"))
        if improved:
            atomic_save_model(self.model, os.path.join(self.run_dir, "best.keras"))
            self.state.update(best_score=float(score), best_epoch=epoch + 1)
        self.state["epochs_done"] = epoch + 1
        atomic_write_text(
            os.path.join(self.run_dir, "state.json"), json.dumps(self.state, indent=2)
        )


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs (so to history.csv); stops the run
    once `budget_minutes` of training have passed, at an epoch's end."""

    def __init__(self, budget_minutes=None):
        super().__init__()
        self.budget = budget_minutes * 60 if budget_minutes else None
        self.spent = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        self.spent += seconds
        if logs is not None:
            logs["epoch_seconds"] = seconds
        if self.budget and self.spent >= self.budget:
            print(
                f"time budget of {self.budget / 60:g} min reached after "
                f"epoch {epoch + 1}"
            )
            self.model.stop_training = True


def read_history(run_dir):
    """The rows of a run's history.csv, as dicts of strings."""
    with open(os.path.join(run_dir, "history.csv"), newline="") as file:
        return list(csv.DictReader(file))


def trim_history(path, epochs_done):
    """Keeps the header and the first `epochs_done` rows of a CSV log."""
    if not os.path.isfile(path):
        return
    with open(path) as file:
        lines = file.readlines()
    atomic_write_text(path, "".join(lines[: 1 + epochs_done]))


# --------------------------------------------------------------------------
# Data, model and optimizer


def load_data(config, run_dir):
    """`{split: Examples}` from the configured source."""
    if config.data_npz:
        return load_npz_splits(config)
    from tfseg import data  # noqa: PLC0415 - the pipeline uses TensorFlow

    if importlib.util.find_spec("tensorflow") is None:
        raise ValueError(
            "Reading images needs TensorFlow, which is not installed here. "
            "Install it (pip install tensorflow), or export the splits where "
            "it is: `python -m tfseg export-data --data-dir DIR --image-size "
            f"{config.image_size} --out pets.npz`, copy pets_*.npz here and "
            "train with --data-npz pets.npz."
        )
    data_dir = config.data_dir
    if config.synthetic:
        data_dir = os.path.join(
            config.output_dir, f".synthetic_{config.synthetic}_{config.seed}"
        )
        if not os.path.isdir(data_dir):
            # Written aside and renamed, so that workers of one cluster,
            # starting together, never read a half-written folder.
            os.makedirs(config.output_dir, exist_ok=True)
            scratch = tempfile.mkdtemp(dir=config.output_dir, prefix=".writing_")
            data.write_synthetic_pets(scratch, config.synthetic, seed=config.seed)
            try:
                os.rename(scratch, data_dir)
            except OSError:  # another worker got there first: same data
                shutil.rmtree(scratch)
    return data.load_oxford_pet(
        data_dir,
        config.image_size,
        val_fraction=config.val_fraction,
        seed=config.seed,
        binary=config.binary,
        max_examples=config.max_examples,
        skip_bad=config.skip_bad,
        keep_original_mask=True,
        cache_dir=config.cache_dir,
    )


def load_npz_splits(config):
    """`{split: Examples}` from `export-data` files: no TensorFlow needed.

    `config.data_npz` is the `--out` path given to `export-data`; the splits
    are next to it as `<stem>_train.npz`, `<stem>_val.npz` (optional) and
    `<stem>_test.npz`.
    """
    from tfseg.data.arrays import load_npz  # noqa: PLC0415
    from tfseg.data.arrays import split_path  # noqa: PLC0415

    paths = {split: split_path(config.data_npz, split) for split in SPLITS}
    missing = [
        paths[split] for split in ("train", "test") if not os.path.isfile(paths[split])
    ]
    if missing:
        raise ValueError(
            f"--data-npz {config.data_npz!r}: no {' or '.join(missing)}. Pass "
            "the --out path given to `python -m tfseg export-data`, which "
            "writes <stem>_train.npz, <stem>_val.npz and <stem>_test.npz."
        )
    splits = {}
    for split, path in paths.items():
        if split == "val" and not os.path.isfile(path):
            continue
        examples = load_npz(path)
        size = examples.images.shape[1:3]
        if tuple(size) != (config.image_size, config.image_size):
            raise ValueError(
                f"{path!r} holds {size[0]}x{size[1]} images but --image-size "
                f"is {config.image_size}. Pass --image-size {size[0]}, or "
                f"export again with --image-size {config.image_size}."
            )
        if len(examples) and examples.masks.max() >= config.num_classes:
            raise ValueError(
                f"{path!r} holds class {examples.masks.max()}, but a "
                f"{'binary' if config.binary else '3-class'} run has classes "
                f"0..{config.num_classes - 1}. Export with the same --binary "
                "setting as the training."
            )
        if config.max_examples:
            examples = examples.take(range(min(config.max_examples, len(examples))))
        splits[split] = examples
    return splits


def make_datasets(config, splits, replicas=1, initial_epoch=0):
    """Training and validation batches.

    tf.data on the TensorFlow backend. With `--data-npz` on another backend,
    `ArrayBatches` instead, which needs no TensorFlow (and on JAX augments on
    the device). On the TensorFlow backend tf.data is the faster of the two
    (4.8 against 5.8 s an epoch in docs/BENCHMARKS.md), so it serves `.npz`
    splits there too.
    """
    # Keras cannot split a smaller last batch unevenly over several replicas:
    # with more than one, validation keeps whole batches only (the test
    # report afterwards scores every image).
    whole_batches = replicas > 1
    val_examples = splits.get("val")
    enough = val_examples is not None and len(val_examples) >= (
        config.batch_size if whole_batches else 1
    )
    if config.data_npz and keras.backend.backend() != "tensorflow":
        from tfseg.data.batches import ArrayBatches  # noqa: PLC0415 - no TF

        make = functools.partial(ArrayBatches, initial_epoch=initial_epoch)
    else:
        from tfseg.data.pipeline import make_dataset as make  # noqa: PLC0415 - TF
    from tfseg.data.augment import Augmentation  # noqa: PLC0415

    train = make(
        splits["train"],
        config.batch_size,
        training=True,
        augmentation=Augmentation() if config.augment else None,
        seed=config.seed,
        class_weights=config.class_weights,
    )
    val = None
    if enough:
        val = make(val_examples, config.batch_size, drop_remainder=whole_batches)
    return train, val


def build_model(config):
    """Creates the configured model (compiled by `compile_model`)."""
    accepted = set(model_arguments(config.model))
    kwargs = {
        "input_shape": (config.image_size, config.image_size, 3),
        "num_classes": config.num_classes,
        **config.model_args,
    }
    for key in ("encoder", "alpha"):
        if getattr(config, key) is not None:
            kwargs[key] = getattr(config, key)
    if "encoder_weights" in accepted:
        kwargs["encoder_weights"] = resolve_encoder_weights(config)
        kwargs["freeze_encoder"] = config.freeze_encoder
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"Model {config.model!r} does not take {unknown} (flags "
            f"{', '.join('--' + k.replace('_', '-') for k in unknown)})."
        )
    return create_model(config.model, **kwargs)


def resolve_encoder_weights(config):
    """`encoder_weights` for the builder: "auto" -> ImageNet where it exists."""
    weights = config.encoder_weights
    if weights in (None, "none", "None"):
        return None
    if weights != "auto":
        return weights
    encoder = config.encoder or model_defaults(config.model).get("encoder")
    return None if encoder in (None, "unet") else "imagenet"


def compile_model(model, config, steps_per_epoch):
    """AdamW with cosine decay after a linear warm-up; loss; IoU metrics."""
    total_steps = max(config.epochs * steps_per_epoch, 1)
    warmup_steps = min(int(config.warmup_epochs * steps_per_epoch), total_steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else config.learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=0.01,
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    model.compile(
        optimizer=optimizer,
        loss=losses.get_loss(config.loss),
        metrics=metrics.training_metrics(config.num_classes),
    )


# --------------------------------------------------------------------------
# The run


def new_run_dir(config):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = config.run_name or f"{stamp}_{config.model}"
    run_dir = os.path.join(config.output_dir, name)
    os.makedirs(run_dir, exist_ok=config.run_name is not None)
    return run_dir


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


def train(config):
    """Trains, evaluates and reports one run. Returns the run folder.

    Raises:
        ValueError: for settings that cannot work (with the fix).
    """
    if config.resume:
        run_dir = config.resume
        saved = read_json(os.path.join(run_dir, "config.json"))
        if saved is None or not os.path.isfile(os.path.join(run_dir, "last.keras")):
            raise ValueError(
                f"Cannot resume from {run_dir!r}: it holds no config.json and "
                "last.keras. Pass a run folder that finished at least one epoch."
            )
        # The run continues exactly as configured: same data, schedule, epochs.
        config = TrainConfig(**{**saved["config"], "resume": run_dir})
    config.validate()
    keras.utils.set_random_seed(config.seed)
    devices = describe_devices()
    precision = choose_precision(config.precision, devices)
    keras.config.set_dtype_policy(precision)
    strategy = make_strategy(config.strategy, devices)
    strategy_name, replicas = describe_strategy(strategy)
    if config.batch_size % replicas:
        raise ValueError(
            f"--batch-size {config.batch_size} does not split evenly over "
            f"{replicas} replicas ({strategy_name}); pass a multiple of "
            f"{replicas}, e.g. {replicas * max(config.batch_size // replicas, 1)}."
        )
    run_dir = config.resume or new_run_dir(config)
    print(
        f"run folder: {run_dir}\nprecision: {precision}; devices: "
        f"{', '.join(d['name'] for d in devices)}; strategy: "
        f"{strategy_name or 'none'} ({replicas} replica(s))"
    )

    splits = load_data(config, run_dir)
    state = read_json(os.path.join(run_dir, "state.json"), {"epochs_done": 0})
    train_data, val_data = make_datasets(
        config, splits, replicas, initial_epoch=state["epochs_done"]
    )
    steps = max(len(splits["train"]) // config.batch_size, 1)
    atomic_write_text(
        os.path.join(run_dir, "config.json"),
        json.dumps(
            {
                "config": dataclasses.asdict(config),
                "precision": precision,
                "strategy": strategy_name,
                "replicas": replicas,
                "devices": devices,
                "versions": versions(),
                "examples": {split: len(e) for split, e in splits.items()},
                "skipped": {
                    split: e.skipped for split, e in splits.items() if e.skipped
                },
            },
            indent=2,
            default=str,
        ),
    )
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    with scope:
        if config.resume:
            model = keras.models.load_model(os.path.join(run_dir, "last.keras"))
        else:
            model = build_model(config)
            compile_model(model, config, steps)
    history_path = os.path.join(run_dir, "history.csv")
    trim_history(history_path, state["epochs_done"])
    callbacks = [
        EpochTimer(config.time_budget),  # first: its log entry reaches the CSV
        keras.callbacks.CSVLogger(history_path, append=state["epochs_done"] > 0),
        RunCheckpoint(run_dir, state),
    ]
    if keras.backend.backend() == "tensorflow" and importlib.util.find_spec(
        "tensorboard"
    ):
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")))
    if config.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                MONITOR, patience=config.early_stopping, mode="max"
            )
        )
    if state["epochs_done"] < config.epochs:
        try:
            model.fit(
                train_data,
                validation_data=val_data,
                epochs=config.epochs,
                initial_epoch=state["epochs_done"],
                callbacks=callbacks,
                shuffle=False,  # the dataset shuffles, seeded
                verbose=1 if sys.stdout.isatty() else 2,
            )
        except KeyboardInterrupt:
            atomic_save_model(model, os.path.join(run_dir, "interrupted.keras"))
            print(
                f"\nInterrupted after {state['epochs_done']} finished epoch(s). "
                f"Checkpoints are in {run_dir}; continue with:\n"
                f"  python train_pet.py --resume {run_dir}"
            )
            raise SystemExit(130) from None
    report_run(run_dir, splits, config)
    return run_dir


def report_run(run_dir, splits, config):
    """Evaluates the best model on the test split and writes the reports."""
    from tfseg import evaluate  # noqa: PLC0415
    from tfseg import visualize  # noqa: PLC0415

    best_path = os.path.join(run_dir, "best.keras")
    if not os.path.isfile(best_path):  # no validation split: last is best
        best_path = os.path.join(run_dir, "last.keras")
    model = keras.models.load_model(best_path, compile=False)
    atomic_save_model(model, os.path.join(run_dir, "model.keras"))
    test = splits["test"]
    report = evaluate.evaluate_model(model, test, config.batch_size)
    evaluate.write_report(report, run_dir)
    print(evaluate.format_report(report))
    shown = test.take(range(min(6, len(test))))
    predictions = [
        logits.argmax(-1)
        for _, logits in evaluate.predict_logits(model, shown.images, len(shown))
    ]
    visualize.save_prediction_grid(
        os.path.join(run_dir, "predictions.png"),
        shown.images,
        shown.masks,
        [np.concatenate(predictions)],
        names=shown.names,
    )
    visualize.save_curves(
        os.path.join(run_dir, "history.csv"), os.path.join(run_dir, "curves.png")
    )
    return report
