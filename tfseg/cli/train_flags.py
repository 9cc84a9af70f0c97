"""The flags of `tfseg train`, one per `TrainConfig` field, and the types
that read their values: built once here, for train, compare and export-data.

No Keras import: `tfseg --help` answers at once.
"""

import argparse
import dataclasses
import json

from tfseg import config
from tfseg import sizes
from tfseg.config import TrainConfig
from tfseg.data.sizing import LONGEST_SIDE
from tfseg.data.sizing import WINDOWED_SIDE
from tfseg.models.registry import list_encoders
from tfseg.models.registry import list_models

# Help of the train flags; every TrainConfig field has a flag.
TRAIN_HELP = {
    "recipe": "tfseg (the best found, docs/BENCHMARKS.md) or tutorial (the "
    "TensorFlow tutorial's settings); flags given override the recipe's",
    "model": ", ".join(list_models()),
    "model_args": "builder argument KEY=VALUE (value read as JSON), repeatable",
    "encoder": f"{', '.join(list_encoders())} (default: the model's)",
    "alpha": "MobileNetV2 width multiplier (default: "
    f"{config.DEFAULT_MOBILENET_ALPHA})",
    "encoder_lr_scale": "the pretrained encoder's learning rate as a fraction "
    "of the decoder's",
    "schedule": "cosine (decay after the warm-up) or constant",
    "ema": "momentum of an average of the weights (0 = off), which is "
    "validated and kept as best.keras",
    "data_dir": "a dataset folder: Oxford-IIIT Pet's layout, split folders, "
    "SegNet's, or one images and one masks folder (README, 'Your own data'); "
    "default: Oxford-IIIT Pet from TFDS",
    "dataset": "the folder's description (classes, void values, colours) when "
    "it has no dataset.json",
    "image_size": "a side (128) or HEIGHTxWIDTH (352x480)",
    "crop": "train on random SIZE windows of the images at --image-size (a "
    "side or HEIGHTxWIDTH), or none for whole images; the model is saved at "
    "--image-size to score",
    "data_npz": "splits from `tfseg export-data --out FILE` (no TensorFlow needed)",
    "synthetic": "train on N synthetic pets (a smoke run, no download)",
    "class_weights": "one positive weight per class, in id order, or "
    f"{config.MEDIAN_FREQUENCY} (SegNet's balancing, from the training masks)",
    "encoder_weights": "auto (ImageNet for pretrained encoders), imagenet, none "
    "or a .h5 path",
    "max_examples": "at most N examples per split",
    "binary": "pet and border vs background",
    "skip_bad": "skip broken files and list them",
    "cache_dir": "keep decoded splits here as .npz",
    "early_stopping": "stop after PATIENCE epochs without a better val mean IoU",
    "time_budget": "fit the run, test report included, into MIN minutes: "
    "the epochs (and the schedule) are set after timing the first two",
    "output_dir": "where run folders go",
    "run_name": "run folder name (default: <time>_<model>); never reused",
    "resume": "continue RUN_DIR from its last finished epoch; --epochs N extends it",
    "hosts": "train across N hosts (JAX backend); or $KERAS_DISTRIBUTION_NUM_PROCESSES",
    "host_index": "this host, 0 to N-1 (0 writes the run folder); or "
    "$KERAS_DISTRIBUTION_PROCESS_ID",
    "coordinator": "HOST:PORT where host 0 meets the others; or the first of "
    "$KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "host_timeout": "seconds to wait for every host to join",
}
TRAIN_CHOICES = {
    "recipe": tuple(config.RECIPES),
    "schedule": config.SCHEDULES,
    "loss": config.LOSS_NAMES,
    "precision": config.PRECISIONS,
    "strategy": config.STRATEGIES,
}
# How a default that depends on the data is shown (in train's help and in
# compare's, which passes nothing where not given).
SHOWN_DEFAULTS = {
    "image_size": f"{config.DEFAULT_IMAGE_SIZE}; a described folder's shape, "
    f"at most {LONGEST_SIDE} px long (its own with --crop; at most "
    f"{WINDOWED_SIDE} with the default windows)",
    "crop": "none; for a described folder of frames longer than "
    f"{LONGEST_SIDE} px, windows at most {LONGEST_SIDE} px long of frames at "
    f"most {WINDOWED_SIDE} px long",
    **{
        name: f"{getattr(TrainConfig(), name):g}; {value:g} for a described folder"
        for name, value in config.DESCRIBED_DATA_DEFAULTS.items()
    },
}
TRAIN_METAVARS = {
    "model_args": "KEY=VALUE",
    "data_npz": "FILE",
    "dataset": "FILE",
    "image_size": "SIZE",
    "synthetic": "N",
    "early_stopping": "PATIENCE",
    "time_budget": "MIN",
    "resume": "RUN_DIR",
    "max_examples": "N",
    "hosts": "N",
    "host_index": "I",
    "coordinator": "HOST:PORT",
    "host_timeout": "SECONDS",
}


def add_train_arguments(parser, names=None, defaults=None, shown=None):
    """One flag per `TrainConfig` field (those in `names`, where given).

    Without `defaults`, the namespace holds only the flags the user gave
    (`argparse.SUPPRESS`): what `--resume` compares. With `defaults`
    (`{field: value}` over `TrainConfig`'s, as `compare` has), every flag
    is in the namespace, with its default where not given. `shown` says in
    words a default that is not its value (`{field: text}`, over
    `SHOWN_DEFAULTS`).
    """
    shown = {**SHOWN_DEFAULTS, **(shown or {})}
    base = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        name = field.name
        if (names is not None and name not in names) or name in config.FOUND_FIELDS:
            continue
        default = getattr(base, name)
        if defaults is not None:
            default = defaults.get(name, default)
        help_text = TRAIN_HELP.get(name, "")
        if name == "augment":
            help_text = "turn off augmentation of the training split (default: on)"
        elif "default" not in help_text and not isinstance(default, (list, dict)):
            said = f"default: {shown.get(name, default)}"
            help_text = f"{help_text} ({said})" if help_text else said
        options = dict(
            dest=name,
            default=argparse.SUPPRESS if defaults is None else default,
            help=help_text,
        )
        if name == "augment":
            parser.add_argument("--no-augment", action="store_false", **options)
        elif field.type is bool:
            parser.add_argument(config.flag(name), action="store_true", **options)
        elif name == "model_args":
            parser.add_argument(
                "--model-arg", action="append", type=parse_model_arg, **options
            )
        elif name == "class_weights":
            parser.add_argument(
                config.flag(name), type=parse_weight, nargs="+", **options
            )
        elif name in ("image_size", "crop"):
            kind = parse_crop if name == "crop" else parse_size
            parser.add_argument(config.flag(name), type=kind, metavar="SIZE", **options)
        else:
            kind = {"int": int, "float": float}.get(_type_name(field.type), str)
            parser.add_argument(
                config.flag(name),
                type=kind,
                choices=TRAIN_CHOICES.get(name),
                metavar=TRAIN_METAVARS.get(name),
                **options,
            )


def _type_name(annotation):
    return getattr(annotation, "__name__", str(annotation))


def parse_size(text):
    try:
        return sizes.parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_crop(text):
    """`--crop`'s value: a size, or `none` (whole images, no windows)."""
    if str(text).strip().lower() == config.NO_CROP:
        return config.NO_CROP
    try:
        return sizes.parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a window is a side (224), HEIGHTxWIDTH (224x320) or {config.NO_CROP} "
            f"(whole images); received {text!r}"
        ) from None


def parse_weight(text):
    """A class weight, or `median-frequency`."""
    if text == config.MEDIAN_FREQUENCY:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a class weight is a number, or {config.MEDIAN_FREQUENCY}; "
            f"received {text!r}"
        ) from None


def parse_model_arg(item):
    """`"key=value"` -> `("key", value)`, the value read as JSON when it parses."""
    key, separator, value = item.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE; received {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
