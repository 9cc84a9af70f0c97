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
and TensorFlow load only when a command runs (after a check that the
Keras backend named is installed). TensorFlow's C++ start-up lines are
hidden unless `--verbose` (or your own `TF_CPP_MIN_LOG_LEVEL=0`) asks for
them. A closed standard output (`tfseg ... | head`) never stops a command:
what it prints after that is dropped, and the files it writes are written.
"""

import contextlib
import os
import sys
import time

from tfseg import environment
from tfseg.cli.commands import USAGE_ERROR
from tfseg.cli.commands import train_config
from tfseg.cli.parser import build_parser
from tfseg.console import filtered_stderr

__all__ = ["build_parser", "main", "train_config"]


QUIET = "TFSEG_QUIET_TENSORFLOW"  # set where tfseg, not the user, set the level


def wants_quiet(verbose):
    """Whether to hide TensorFlow's C++ log lines and native libraries'
    noise: unless `--verbose`, or the user set `TF_CPP_MIN_LOG_LEVEL=0`
    (a level of 1 or more asks for less, so the filter stays). Where the
    user set no level, sets 3 for this process and those it starts
    (compare's trainings)."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if os.environ.get(QUIET) or level is None:
        os.environ.update({"TF_CPP_MIN_LOG_LEVEL": "3", QUIET: "1"})
        level = None  # tfseg's own
    return not verbose and (level is None or level.strip() not in ("", "0"))


class SurvivingStdout:
    """Standard output that a closed pipe (`tfseg ... | head`) never stops:
    after the reader has gone, what is printed is dropped (descriptor 1
    points at the null device) and the command goes on to write its files."""

    def __init__(self, stream):
        self.stream = stream
        self.closed_by_reader = False

    def write(self, text):
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self.drop_the_rest()
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except BrokenPipeError:
            self.drop_the_rest()

    def drop_the_rest(self):
        self.closed_by_reader = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, self.stream.fileno())
        os.close(devnull)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv=None):
    """Runs one command; returns its exit code (0, 1 partial, 2 unusable)."""
    started = time.monotonic()  # a time budget counts from here (imports too)
    stdout = sys.stdout
    sys.stdout = SurvivingStdout(stdout)
    try:
        return run_command(argv, started)
    finally:
        sys.stdout.flush()
        sys.stdout = stdout


def run_command(argv, started):
    args = build_parser().parse_args(argv)
    args.started = started
    quiet = wants_quiet(args.verbose)
    with filtered_stderr() if quiet else contextlib.nullcontext():
        try:
            environment.check_backend()  # before Keras is imported
            return args.handler(args) or 0
        except (ValueError, RuntimeError, OSError) as error:
            print(f"error: {getattr(error, 'cli_message', error)}", file=sys.stderr)
            return USAGE_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
