"""The run folder: its files and its rules.

A run of `tfseg train` lives in `<output-dir>/<run-name>/`:

    config.json     resolved configuration (absolute paths), versions,
                    precision, devices, example counts, skipped files
    state.json      epochs finished, best score (written after each epoch)
    history.csv     one row per epoch (Keras CSVLogger)
    last.keras      model + optimizer after the last finished epoch
    best.keras      model + optimizer at the best validation mean IoU
    model.keras     the best model without compile state: reloads with
                    keras.models.load_model anywhere, no tfseg import
    metrics.json    test scores (also metrics.md), predictions.png,
    curves.png      and logs/ for TensorBoard (TensorFlow backend)

The rules, kept here and nowhere else:
- a new run never writes into an existing folder (`plan_new_run` refuses);
  the folder is made only once the run has started (`create_run`), so a
  failed start leaves nothing behind;
- every file is written atomically (`tfseg.files`);
- `open_run` reads a folder back for `--resume`, `evaluate`, `predict`,
  `export`, the demo and `compare`, and says what is wrong with it when it
  cannot. (Those read run folders too, which is why this module sits at the
  package root rather than in `tfseg.train`.)

Resuming a run (which flags may change, and how) is `tfseg.train.start`.
No Keras import at module level: `tfseg --help` and the data code use it.
"""

import csv
import itertools
import os

from tfseg.config import TrainConfig
from tfseg.files import FileError
from tfseg.files import atomic_write
from tfseg.files import explain_os_error
from tfseg.files import load_model
from tfseg.files import read_json
from tfseg.files import save_model
from tfseg.files import write_json

CONFIG = "config.json"
STATE = "state.json"
HISTORY = "history.csv"
LAST = "last.keras"
BEST = "best.keras"
MODEL = "model.keras"
INTERRUPTED = "interrupted.keras"
METRICS = "metrics"  # metrics.json and metrics.md


class RunError(FileError):
    """A run folder or an output path that cannot be used, with the fix."""


# --------------------------------------------------------------------------
# A run's life


def check_output_dir(output_dir):
    """Raises `RunError` if runs cannot be written into `output_dir`."""
    check_writable(output_dir, "--output-dir")


def check_writable(folder, flag, given=None):
    """Raises `RunError` unless files can be made in `folder` (made if
    missing): its nearest existing folder is one you can write to. `given`
    is the path the user gave to `flag`. Defaults to `folder`."""
    given = folder if given is None else given
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise RunError(
            f"{flag} {given!r}: {existing!r} is a file, not a folder. "
            "Pass a folder (it is created if missing)."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(
            f"{flag} {given!r}: {existing!r} is not writable by you. "
            "Pass a folder you can write to."
        )


def plan_new_run(config, stamp):
    """The folder a new run will use (not made yet): `<output-dir>/<name>`.

    The name is `--run-name`, else `<stamp>_<model>`; where tfseg picks it,
    `create_run` makes the first of `<stamp>_<model>`, `..._2`, `..._3` ...
    that is free then (two runs started in the same second get two folders).

    Raises:
        RunError: if the output folder is unusable, or the `--run-name`
            folder exists (a new run never writes into an old one).
    """
    check_output_dir(config.output_dir)
    name = config.run_name or f"{stamp}_{config.model}"
    if os.sep in name or name in ("", ".", ".."):
        raise RunError(f"--run-name must be a plain folder name; received {name!r}.")
    run_dir = os.path.join(config.output_dir, name)
    if config.run_name and os.path.lexists(run_dir):
        raise _exists_already(run_dir)
    return run_dir


def _exists_already(run_dir):
    return RunError(
        f"Run folder {run_dir!r} exists already, and a new run never "
        f"writes into an old one. Continue it with `tfseg train --resume "
        f"{run_dir}`, or pass another --run-name."
    )


def create_run(run_dir, record, numbered=False):
    """Makes the run folder and writes its `config.json` (`record`); returns
    the folder made. With `numbered` (a name tfseg picked), a folder that
    exists, made by a run started in the same second, is passed over for
    `<run_dir>_2`, `_3` ...; else it is refused."""
    for number in itertools.count(1):
        folder = run_dir if number == 1 else f"{run_dir}_{number}"
        try:
            os.makedirs(folder)  # fails where it exists: the race is settled here
            break
        except FileExistsError:
            if not numbered:
                raise _exists_already(folder) from None
        except OSError as error:
            raise RunError(explain_os_error(folder, error)) from error
    write_json(os.path.join(folder, CONFIG), record)
    return folder


def read_config(run_dir, needs=()):
    """The `TrainConfig` and whole record of a run folder's `config.json`.

    Raises:
        RunError: if `run_dir` is not a run folder or lacks a file of `needs`.
    """
    if not os.path.exists(run_dir):
        raise RunError(
            f"{run_dir!r} does not exist. Pass a run folder that `tfseg train` "
            "made (runs/<time>_<model> by default)."
        )
    record = read_json(os.path.join(run_dir, CONFIG))
    if not os.path.isdir(run_dir) or record is None:
        raise RunError(
            f"{run_dir!r} is not a tfseg run folder: it has no {CONFIG}. Pass a "
            "folder that `tfseg train` made (runs/<time>_<model> by default)."
        )
    missing = [
        name for name in needs if not os.path.isfile(os.path.join(run_dir, name))
    ]
    if missing:
        raise RunError(
            f"{run_dir!r} has no {' or '.join(missing)}: its training has not "
            f"finished. Finish it with `tfseg train --resume {run_dir}`."
        )
    return TrainConfig.from_dict(record["config"]), record


def read_state(run_dir):
    return read_json(os.path.join(run_dir, STATE), {"epochs_done": 0})


def write_final_model(run_dir, size=None):
    """Writes `model.keras`, the best checkpoint (`best.keras`, or
    `last.keras` where no validation picked one) without its compile state,
    at input `size` `(height, width)` where given (a run trained on `--crop`
    windows is scored at its `--image-size`); returns the model."""
    from tfseg.models.rebuild import with_input_size

    source = BEST if os.path.isfile(os.path.join(run_dir, BEST)) else LAST
    model = load_model(os.path.join(run_dir, source), compile=False)
    if size is not None:
        model = with_input_size(model, size)
    save_model(model, os.path.join(run_dir, MODEL))
    return model


def open_run(run_dir):
    """The configuration and trained model of a finished run folder.

    A missing or damaged `model.keras` of a run with a finished epoch is
    written again from its checkpoint (`write_final_model`), with a note.
    """
    config, _ = read_config(run_dir)
    path = os.path.join(run_dir, MODEL)
    try:
        return config, load_model(path)
    except FileError as error:
        if not read_state(run_dir)["epochs_done"]:
            raise RunError(
                f"{error} The run has no checkpoint to take the model from: "
                f"finish it with `tfseg train --resume {run_dir}`."
            ) from error
        model = write_final_model(run_dir, config.image_shape)
        print(f"note: {path} was missing or damaged; written again from a checkpoint")
        return config, model


def history_rows(run_dir):
    """The rows of a run's history.csv, as dicts of strings."""
    path = os.path.join(run_dir, HISTORY)
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def trim_history(run_dir, epochs_done):
    """Keeps the header and the first `epochs_done` rows of history.csv
    (rows of an epoch that was killed before its checkpoint are dropped)."""
    path = os.path.join(run_dir, HISTORY)
    if not os.path.isfile(path):
        return
    with open(path) as file:
        lines = file.readlines()
    atomic_write(path, "".join(lines[: 1 + epochs_done]))


def report_paths(run_dir, name=None):
    """`(json, md)` paths of a report: `metrics.*`, or `metrics_<name>.*`."""
    stem = os.path.join(run_dir, METRICS + (f"_{name}" if name else ""))
    return stem + ".json", stem + ".md"
