"""`tfseg COMMAND`: the command line. It parses, then calls the library.

    tfseg train --model unet --data-dir DIR        (train_pet.py is the same)
    tfseg evaluate RUN_DIR [--data-dir DIR]        (or an exported FILE)
    tfseg predict RUN_DIR my_cat.jpg --out preds/  (or an exported FILE)
    tfseg export RUN_DIR --format savedmodel|tflite|onnx [--quantize int8]
    tfseg demo RUN_DIR                              (a local web page)
    tfseg compare --models fcn8s,unet,mobilenet_unet --data-dir DIR
    tfseg verify-data DIR
    tfseg export-data --data-dir DIR --image-size 128 --out pets.npz

Nothing heavy is imported to parse: `--help` and argument errors answer at
once, and Keras and TensorFlow load only when a command runs. TensorFlow's
C++ start-up lines are hidden unless `--verbose` (or your own
`TF_CPP_MIN_LOG_LEVEL`) asks for them.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time

from tfseg import config as settings
from tfseg.config import TrainConfig
from tfseg.console import filtered_stderr

EPILOG = "Run `tfseg COMMAND --help` for the flags of a command."
# Exit codes: 1 = the command ran but part of its work failed (e.g. some
# images unreadable); 2 = nothing done, the input cannot work.
PARTIAL_FAILURE = 1
USAGE_ERROR = 2

# Help of the train flags; every TrainConfig field has a flag.
TRAIN_HELP = {
    "recipe": "tfseg (the best found, docs/BENCHMARKS.md) or tutorial (the "
    "TensorFlow tutorial's settings); flags given override the recipe's",
    "model": "fcn32s, fcn16s, fcn8s, unet, mobilenet_unet or pix2pix",
    "model_args": "builder argument KEY=VALUE (value read as JSON), repeatable",
    "encoder": "unet, vgg16, resnet50 or mobilenet_v2 (default: the model's)",
    "alpha": "MobileNetV2 width multiplier (default: 0.5)",
    "encoder_lr_scale": "the pretrained encoder's learning rate as a fraction "
    "of the decoder's",
    "schedule": "cosine (decay after the warm-up) or constant",
    "ema": "momentum of an average of the weights (0 = off), which is "
    "validated and kept as best.keras",
    "data_dir": "local Oxford-IIIT Pet folder (official layout); default: TFDS",
    "data_npz": "splits from `tfseg export-data --out FILE` (no TensorFlow needed)",
    "synthetic": "train on N synthetic pets (a smoke run, no download)",
    "class_weights": "one positive weight per class (pet, background, border)",
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
    "recipe": tuple(settings.RECIPES),
    "schedule": settings.SCHEDULES,
    "loss": settings.LOSS_NAMES,
    "precision": settings.PRECISIONS,
    "strategy": settings.STRATEGIES,
}
TRAIN_METAVARS = {
    "model_args": "KEY=VALUE",
    "data_npz": "FILE",
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


def add_train_arguments(parser):
    """One flag per `TrainConfig` field, without defaults in the namespace
    (`argparse.SUPPRESS`): the parsed flags are those the user gave."""
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        name = field.name
        default = getattr(defaults, name)
        help_text = TRAIN_HELP.get(name, "")
        if name == "augment":
            help_text = "turn off augmentation of the training split (default: on)"
        elif "default" not in help_text and not isinstance(default, (list, dict)):
            shown = f"default: {default}"
            help_text = f"{help_text} ({shown})" if help_text else shown
        options = dict(dest=name, default=argparse.SUPPRESS, help=help_text)
        if name == "augment":
            parser.add_argument("--no-augment", action="store_false", **options)
        elif field.type is bool:
            parser.add_argument(settings.flag(name), action="store_true", **options)
        elif name == "model_args":
            parser.add_argument(
                "--model-arg", action="append", type=parse_model_arg, **options
            )
        elif name == "class_weights":
            parser.add_argument(settings.flag(name), type=float, nargs="+", **options)
        else:
            kind = {"int": int, "float": float}.get(_type_name(field.type), str)
            parser.add_argument(
                settings.flag(name),
                type=kind,
                choices=TRAIN_CHOICES.get(name),
                metavar=TRAIN_METAVARS.get(name),
                **options,
            )


def add_tta_argument(parser, where=""):
    parser.add_argument(
        "--tta",
        choices=("none", "flip"),
        default="none",
        help="flip: average the logits of each image and of its mirror (two "
        f"passes) {where}".strip(),
    )


def _type_name(annotation):
    return getattr(annotation, "__name__", str(annotation))


def parse_model_arg(item):
    """`"key=value"` -> `("key", value)`, the value read as JSON when it parses."""
    key, separator, value = item.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE; received {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def train_config(args):
    """`(TrainConfig, names of the settings given)` from parsed train flags."""
    given = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(TrainConfig)
        if hasattr(args, field.name)
    }
    if "model_args" in given:
        given["model_args"] = dict(given["model_args"])
    if "class_weights" in given:
        given["class_weights"] = tuple(given["class_weights"])
    return TrainConfig.for_recipe(**given), set(given)


def run_train(args):
    from tfseg.training import train  # imports Keras

    config, given = train_config(args)
    train(config, explicit=given, started=args.started)


def run_verify_data(args):
    from tfseg.data.verify import verify_folder

    return PARTIAL_FAILURE if verify_folder(args.directory) else 0


def run_export_data(args):
    from tfseg.data.loading import export_splits  # TensorFlow

    config = TrainConfig(
        data_dir=args.data_dir,
        image_size=args.image_size,
        val_fraction=args.val_fraction,
        seed=args.seed,
        binary=args.binary,
        max_examples=args.max_examples,
        skip_bad=args.skip_bad,
    )
    config.validate()
    export_splits(config, args.split, args.out, resize_mode=args.resize_mode)


def run_evaluate(args):
    from tfseg.evaluate import evaluate_run

    evaluate_run(
        args.path,
        data_dir=args.data_dir,
        data_npz=args.data_npz,
        out=args.out,
        skip_bad=args.skip_bad,
        model_file=args.model,
        image_size=args.image_size,
        tta=args.tta,
    )


def run_predict(args):
    from tfseg.predict import predict_files

    failed = predict_files(args.path, args.images, args.out, tta=args.tta)
    return PARTIAL_FAILURE if failed else 0


def run_export(args):
    from tfseg.export import export_run

    export_run(
        args.run_dir,
        args.format,
        args.out,
        quantize=args.quantize,
        output=args.output,
        data_dir=args.data_dir,
        data_npz=args.data_npz,
        calibration_images=args.calibration_images,
    )


def run_demo(args):
    from tfseg.demo import serve  # Gradio and Keras load when it starts

    serve(args.source, host=args.host, port=args.port)


def run_compare(args):
    from tfseg.compare import compare

    rows = compare(args)
    return 0 if any(row["status"] == "ok" for row in rows) else PARTIAL_FAILURE


def build_parser():
    from tfseg import compare  # its flags; imports no Keras
    from tfseg import export as exporting  # its choices; imports no Keras

    common = argparse.ArgumentParser(add_help=False)
    verbose_help = "show TensorFlow's own start-up and C++ log lines"
    # Before or after the command; the command's copy keeps the value given
    # before it (SUPPRESS) unless given itself.
    common.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help
    )
    parser = argparse.ArgumentParser(
        prog="tfseg",
        description="Semantic segmentation of Oxford-IIIT Pet with Keras 3.",
        epilog=EPILOG,
    )
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, handler, help_text, **kwargs):
        sub = commands.add_parser(
            name, help=help_text, description=help_text, parents=[common], **kwargs
        )
        sub.set_defaults(handler=handler)
        return sub

    add_train_arguments(
        command("train", run_train, "train a model, evaluate it, write a run folder")
    )

    evaluate = command(
        "evaluate",
        run_evaluate,
        "score a run's model, or an exported file, on a test split",
    )
    evaluate.add_argument(
        "path",
        metavar="RUN_DIR_OR_FILE",
        help="a run folder, or an exported .tflite/.onnx file or SavedModel "
        "folder (then --data-dir or --data-npz says which data)",
    )
    evaluate.add_argument(
        "--model",
        metavar="FILE",
        help="with a run folder: score this exported file on the run's data "
        "(writes metrics_<file name>.json in the run folder)",
    )
    evaluate.add_argument(
        "--image-size",
        type=int,
        help="the size the data is read at; must be the model's input size "
        "(default: that size)",
    )
    source = evaluate.add_mutually_exclusive_group()
    source.add_argument(
        "--data-dir",
        help="score this folder's test split (writes metrics_<folder>.json; the "
        "run's own report stays)",
    )
    source.add_argument("--data-npz", metavar="FILE", help="exported splits instead")
    evaluate.add_argument(
        "--out", metavar="FILE.json", help="where to write the report (and .md)"
    )
    evaluate.add_argument(
        "--skip-bad", action="store_true", help=TRAIN_HELP["skip_bad"]
    )
    add_tta_argument(
        evaluate, "(written to metrics_tta-flip.json: the plain report stays)"
    )

    predict = command("predict", run_predict, "segment your own images")
    predict.add_argument(
        "path", metavar="RUN_DIR_OR_FILE", help="a run folder or an exported model"
    )
    predict.add_argument("images", nargs="+")
    predict.add_argument(
        "--out", required=True, help="folder for masks and overlays (made if missing)"
    )
    add_tta_argument(predict)

    export = command("export", run_export, "export a run's model")
    export.add_argument("run_dir")
    export.add_argument("--format", required=True, choices=list(exporting.FORMATS))
    export.add_argument("--out", help="output path (default: in the run folder)")
    export.add_argument(
        "--quantize",
        default="none",
        choices=exporting.QUANTIZE_MODES,
        help="TFLite only: float16 or dynamic-range weights, or full-integer "
        "int8 (uint8 pixels in) calibrated on the run's training split "
        "(default: none, float32)",
    )
    export.add_argument(
        "--output",
        default="logits",
        choices=exporting.OUTPUTS,
        help="TFLite only: argmax gives uint8 class ids (default: logits)",
    )
    calibration = export.add_mutually_exclusive_group()
    calibration.add_argument(
        "--data-dir",
        help="int8: read the run's training split from this folder (when its "
        "own source is not here)",
    )
    calibration.add_argument("--data-npz", metavar="FILE", help="or these exports")
    export.add_argument(
        "--calibration-images",
        type=int,
        default=exporting.CALIBRATION_IMAGES,
        metavar="N",
        help="int8: training images to calibrate on (default: "
        f"{exporting.CALIBRATION_IMAGES}, fewer if the split is smaller)",
    )

    demo = command(
        "demo",
        run_demo,
        'a local web page that segments your photos (pip install "tfseg[demo]")',
    )
    demo.add_argument("source", metavar="RUN_DIR_OR_EXPORTED_FILE")
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    demo.add_argument("--port", type=int, default=7860, help="(default: 7860)")

    compare.add_arguments(
        command("compare", run_compare, "train and compare several models")
    )

    verify = command(
        "verify-data", run_verify_data, "check a dataset folder, name every broken file"
    )
    verify.add_argument("directory", help="folder in the official archive layout")

    export_data = command(
        "export-data",
        run_export_data,
        "write preprocessed splits to .npz (trains on any backend, no TensorFlow)",
    )
    export_data.add_argument("--data-dir", help="dataset folder; default: TFDS")
    export_data.add_argument(
        "--split", nargs="+", default=list(settings.SPLITS), choices=settings.SPLITS
    )
    export_data.add_argument(
        "--image-size", type=int, default=settings.DEFAULT_IMAGE_SIZE
    )
    export_data.add_argument(
        "--val-fraction", type=float, default=TrainConfig.val_fraction
    )
    export_data.add_argument("--seed", type=int, default=TrainConfig.seed)
    export_data.add_argument("--binary", action="store_true")
    export_data.add_argument(
        "--resize-mode", default=settings.RESIZE_MODES[0], choices=settings.RESIZE_MODES
    )
    export_data.add_argument("--max-examples", type=int)
    export_data.add_argument("--skip-bad", action="store_true")
    export_data.add_argument(
        "--out", required=True, help="output .npz (one per split: FILE_SPLIT.npz)"
    )
    return parser


QUIET = "TFSEG_QUIET_TENSORFLOW"  # set where tfseg, not the user, set the level


def wants_quiet(verbose):
    """Whether to hide TensorFlow's C++ log lines and native libraries'
    noise: unless `--verbose`, or the user set `TF_CPP_MIN_LOG_LEVEL`. Sets
    the level for this process and those it starts (compare's trainings)."""
    user_level = "TF_CPP_MIN_LOG_LEVEL" in os.environ and not os.environ.get(QUIET)
    if verbose or user_level:
        return False
    os.environ.update({"TF_CPP_MIN_LOG_LEVEL": "3", QUIET: "1"})
    return True


def main(argv=None):
    """Runs one command; returns its exit code (0, 1 partial, 2 unusable)."""
    started = time.monotonic()  # a time budget counts from here (imports too)
    args = build_parser().parse_args(argv)
    args.started = started
    quiet = wants_quiet(args.verbose)
    with filtered_stderr() if quiet else contextlib.nullcontext():
        try:
            return args.handler(args) or 0
        except (ValueError, RuntimeError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return USAGE_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
