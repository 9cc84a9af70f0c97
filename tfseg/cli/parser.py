"""The flags of every `tfseg` command, built without importing Keras.

The flags of `tfseg train` are built from `TrainConfig`'s fields, one flag
each (`add_train_arguments`); `tfseg compare` takes the shared ones
(`config.COMPARE_SETTINGS`) through the same function. Every default and
choice comes from `tfseg.config`, the model and encoder names from
`tfseg.models.registry`, the export choices from `tfseg.deploy.export`.
"""

import argparse
import difflib

from tfseg import config
from tfseg.cli import commands
from tfseg.cli.train_flags import TRAIN_HELP
from tfseg.cli.train_flags import add_train_arguments
from tfseg.cli.train_flags import parse_size
from tfseg.models.registry import list_encoders
from tfseg.models.registry import list_models

EPILOG = "Run `tfseg COMMAND --help` for the flags of a command."


class Parser(argparse.ArgumentParser):
    """argparse's parser, stricter: a flag is never abbreviated (`--epoch 3`
    is not `--epochs 3`), and a flag a command does not know is refused by
    that command, with its usage and the nearest of its flags."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:  # a command's parser: the top level would not name it
            self.error(self.unrecognized(extras))
        return namespace, extras

    def unrecognized(self, extras):
        """ "unrecognized arguments: ..." and, for each unknown flag, the
        flag of this parser it is nearest to."""
        known = list(self._option_string_actions)
        guesses = []
        for extra in extras:
            flag = extra.split("=", 1)[0]
            if flag.startswith("-"):
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
                guesses += [f"did you mean {close[0]}?"] if close else []
        message = f"unrecognized arguments: {' '.join(extras)}"
        return "; ".join([message, *guesses])


class VersionAction(argparse.Action):
    """`--version`: tfseg's version and its libraries' (read when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from tfseg.environment import describe_versions

        print(describe_versions())
        parser.exit()


def add_tta_argument(parser, where=""):
    parser.add_argument(
        "--tta",
        choices=config.TTA_MODES,
        default=config.TTA_MODES[0],
        help="flip: average the logits of each image and of its mirror (two "
        f"passes) {where}".strip(),
    )


def build_parser():
    from tfseg.deploy import export  # its choices; imports no Keras

    common = Parser(add_help=False)
    verbose_help = "show TensorFlow's own start-up and C++ log lines"
    # Before or after the command; the command's copy keeps the value given
    # before it (SUPPRESS) unless given itself.
    common.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help
    )
    parser = Parser(
        prog="tfseg",
        description="Semantic segmentation with Keras 3: Oxford-IIIT Pet, or any "
        "folder of images and masks.",
        epilog=EPILOG,
    )
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    parser.add_argument(
        "--version",
        action=VersionAction,
        help="tfseg's version, its libraries' and the Keras backend",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, handler, help_text, **kwargs):
        sub = subparsers.add_parser(
            name, help=help_text, description=help_text, parents=[common], **kwargs
        )
        sub.set_defaults(handler=handler)
        return sub

    add_train_arguments(
        command(
            "train",
            commands.run_train,
            "train a model, evaluate it, write a run folder",
        )
    )

    evaluate = command(
        "evaluate",
        commands.run_evaluate,
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
        type=parse_size,
        metavar="SIZE",
        help="the size the data is read at; must be the model's input size "
        "(default: that size)",
    )
    evaluate.add_argument(
        "--dataset",
        metavar="FILE",
        help="with --data-dir: the folder's description (default: its "
        "dataset.json, else the run's classes)",
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
    add_resolution_argument(evaluate, "metrics_resolution-image.json; ")

    predict = command("predict", commands.run_predict, "segment your own images")
    predict.add_argument(
        "path", metavar="RUN_DIR_OR_FILE", help="a run folder or an exported model"
    )
    predict.add_argument(
        "images", nargs="+", help="image files, or folders: every image in them"
    )
    predict.add_argument(
        "--recursive",
        action="store_true",
        help="a folder's subfolders too",
    )
    predict.add_argument(
        "--out", required=True, help="folder for masks and overlays (made if missing)"
    )
    add_tta_argument(predict)
    add_resolution_argument(predict)

    exporting = command("export", commands.run_export, "export a run's model")
    exporting.add_argument("run_dir")
    exporting.add_argument("--format", required=True, choices=list(export.FORMATS))
    exporting.add_argument("--out", help="output path (default: in the run folder)")
    exporting.add_argument(
        "--quantize",
        default="none",
        choices=export.QUANTIZE_MODES,
        help="TFLite only: float16 or dynamic-range weights, or full-integer "
        "int8 (uint8 pixels in) calibrated on the run's training split "
        "(default: none, float32)",
    )
    exporting.add_argument(
        "--output",
        default="logits",
        choices=export.OUTPUTS,
        help="TFLite only: argmax gives uint8 class ids (default: logits)",
    )
    calibration = exporting.add_mutually_exclusive_group()
    calibration.add_argument(
        "--data-dir",
        help="int8: read the run's training split from this folder (when its "
        "own source is not here)",
    )
    calibration.add_argument("--data-npz", metavar="FILE", help="or these exports")
    exporting.add_argument(
        "--calibration-images",
        type=int,
        default=export.CALIBRATION_IMAGES,
        metavar="N",
        help="int8: training images to calibrate on (default: "
        f"{export.CALIBRATION_IMAGES}, fewer if the split is smaller)",
    )

    demo = command(
        "demo",
        commands.run_demo,
        'a local web page that segments your photos (pip install "tfseg[demo]")',
    )
    demo.add_argument("source", metavar="RUN_DIR_OR_EXPORTED_FILE")
    demo.add_argument(
        "--host",
        default=config.DEMO_HOST,
        help=f"address to listen on (default: {config.DEMO_HOST}, this machine only)",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=config.DEMO_PORT,
        help=f"(default: {config.DEMO_PORT})",
    )

    add_compare_arguments(
        command("compare", commands.run_compare, "train and compare several models")
    )

    verify = command(
        "verify-data",
        commands.run_verify_data,
        "check a dataset folder: layout, splits, classes, every broken file",
    )
    verify.add_argument("directory", help="a dataset folder (any --data-dir layout)")
    verify.add_argument("--dataset", metavar="FILE", help=TRAIN_HELP["dataset"])
    written = "write the classes as a dataset.json to edit (default: DIR/dataset.json)"
    optional_file = dict(nargs="?", const=True, metavar="FILE")
    verify.add_argument("--write-dataset", **optional_file, help=written)

    export_data = command(
        "export-data",
        commands.run_export_data,
        "write preprocessed splits to .npz (trains on any backend, no TensorFlow)",
    )
    add_train_arguments(export_data, names=config.EXPORT_DATA_SETTINGS, defaults={})
    export_data.add_argument(
        "--split", nargs="+", default=list(config.SPLITS), choices=config.SPLITS
    )
    export_data.add_argument(
        "--resize-mode", default=config.RESIZE_MODES[0], choices=config.RESIZE_MODES
    )
    export_data.add_argument(
        "--out", required=True, help="output .npz (one per split: FILE_SPLIT.npz)"
    )
    return parser


def add_resolution_argument(parser, where=""):
    parser.add_argument(
        "--resolution",
        choices=config.RESOLUTION_MODES,
        default=config.RESOLUTION_MODES[0],
        help="model: resized to the model's input size and back; image: each "
        f"image at its own size, padded ({where}.tflite/.onnx keep model)",
    )


def _comma_list(text):
    return [item for item in text.split(",") if item]


def add_compare_arguments(parser):
    """The flags of `tfseg compare`: its own, and the train settings every
    model shares (`config.COMPARE_SETTINGS`), built as train's are."""
    parser.add_argument(
        "--models",
        type=_comma_list,
        required=True,
        help=f"comma-separated, of {','.join(list_models())}; MODEL:ENCODER "
        "for one pair",
    )
    parser.add_argument(
        "--encoders",
        type=_comma_list,
        help="cross models that take an encoder with these "
        f"({','.join(list_encoders())})",
    )
    add_train_arguments(
        parser,
        names=config.COMPARE_SETTINGS,
        defaults=config.COMPARE_DEFAULTS,
        shown={"epochs": f"{config.COMPARE_EPOCHS}; with --time-budget, what fits"},
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="MODEL:KEY=VALUE",
        help="builder argument for one model",
    )
    parser.add_argument("--output-dir", default="comparison")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the models already done, continue the others",
    )
    parser.add_argument(
        "--train-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="the rest goes to every `tfseg train`",
    )
