"""`tfseg COMMAND`: the command line. It parses, then calls the library.

    tfseg train --model unet --data-dir DIR        (train_pet.py is the same)
    tfseg evaluate RUN_DIR [--data-dir DIR]        (or an exported FILE)
    tfseg predict RUN_DIR my_cat.jpg --out preds/  (or an exported FILE)
    tfseg export RUN_DIR --format savedmodel|tflite|onnx [--quantize int8]
    tfseg demo RUN_DIR                              (a local web page)
    tfseg compare --models fcn8s,unet,mobilenet_unet --data-dir DIR
    tfseg verify-data DIR
    tfseg export-data --data-dir DIR --image-size 128 --out pets.npz

`parser` builds the flags (those of `train`, and the shared ones of
`compare`, from `TrainConfig`'s fields); `commands` holds one handler per
command, each importing what it needs when it runs. Nothing heavy is
imported to parse: `--help` and argument errors answer at once, and Keras
and TensorFlow load only when a command runs. TensorFlow's C++ start-up
lines are hidden unless `--verbose` (or your own `TF_CPP_MIN_LOG_LEVEL`)
asks for them.
"""

import contextlib
import os
import sys
import time

from tfseg.cli.commands import USAGE_ERROR
from tfseg.cli.commands import train_config
from tfseg.cli.parser import build_parser
from tfseg.console import filtered_stderr

__all__ = ["build_parser", "main", "train_config"]


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
