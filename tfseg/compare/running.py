"""Compare models side by side: same data, split, seed, size and budget.

`tfseg compare --models fcn8s,unet,mobilenet_unet` trains every model with
`tfseg train` (each in its own process, `python -m tfseg train`, so one
failure or crash leaves the others untouched and each gets its own peak
memory; it works from a source checkout and from an installed wheel), then
measures them on this process's device and writes into the output folder:

    comparison.csv, comparison.md   one row per model
    comparison.png                  mean IoU against GMACs and training speed
    predictions.png                 the same test images, one column per model
    runs/<label>/                   each model's full run folder
"""

import csv
import dataclasses
import os
import subprocess
import sys
import time

import tfseg
from tfseg import files
from tfseg import runs
from tfseg.compare.measure import summarize
from tfseg.compare.report import plot_comparison
from tfseg.compare.report import plot_predictions
from tfseg.compare.report import write_table
from tfseg.config import COMPARE_EPOCHS
from tfseg.config import COMPARE_SETTINGS
from tfseg.config import SIZE_FIELDS
from tfseg.config import flag
from tfseg.config import flag_value


@dataclasses.dataclass
class Entry:
    """One model (or model x encoder pair) of a comparison."""

    model: str
    encoder: str = None

    @property
    def label(self):
        return self.model + (f"-{self.encoder}" if self.encoder else "")


def plan(models, encoders=None):
    """The entries to run: every model, crossed with every encoder it takes.

    A model written `MODEL:ENCODER` (e.g. `unet:resnet50`) is that one pair.
    Which models take an encoder, the registry says.
    """
    from tfseg.models import model_arguments  # Keras, when it runs

    entries = []
    for model in models:
        if ":" in model:
            entries.append(Entry(*model.split(":", 1)))
        elif encoders and "encoder" in model_arguments(model):
            entries += [Entry(model, encoder) for encoder in encoders]
        else:
            entries.append(Entry(model))
    return entries


def train_command(entry, args, run_root):
    """The `tfseg train` command line of one entry: the comparison's shared
    settings (`COMPARE_SETTINGS`: the data, its `--dataset` description,
    the size as `--image-size` takes it ...), the entry's model, encoder and
    builder arguments, then `--train-args`.

    Args:
        entry: the `Entry`.
        args: the comparison's parsed flags.
        run_root: the folder its runs go in.

    Returns:
        The command as a list of arguments.
    """
    command = [sys.executable, "-m", "tfseg", "train", "--model", entry.model]
    for name in COMPARE_SETTINGS:
        value = getattr(args, name)
        if name == "epochs" and value is None and args.time_budget is None:
            value = COMPARE_EPOCHS  # a budget, where given, sets the length
        if value is not None:
            text = flag_value(name, value) if name in SIZE_FIELDS else str(value)
            command += [flag(name), text]
    command += ["--output-dir", run_root, "--run-name", entry.label]
    if entry.encoder:
        command += ["--encoder", entry.encoder]
    for scoped in args.model_arg:
        name, _, assignment = scoped.partition(":")
        if name in (entry.model, entry.label):
            command += ["--model-arg", assignment]
    return command + list(args.train_args)


def run_training(command, log_path, label):
    """Runs one training process, its output into `log_path`, echoing its
    epochs; returns `(exit code, peak RSS MiB, seconds)`."""
    start = time.time()
    # The child imports this very tfseg, installed or not.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(tfseg.__file__)))
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        with process.stdout:
            for line in process.stdout:
                log.write(line)
                if line.startswith("Epoch ") and "/" in line:
                    print(f"  {label}: {line.strip().lower()}", flush=True)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux.
    return process.returncode, usage.ru_maxrss / 1024, time.time() - start


def compare(args):
    """Runs the comparison described by parsed `args`; returns the rows."""
    from tfseg.models import list_models

    check_train_args(args.train_args)
    unknown = sorted({m.split(":")[0] for m in args.models} - set(list_models()))
    if unknown:
        raise ValueError(f"Unknown model(s) {unknown}; available: {list_models()}.")
    entries = plan(args.models, args.encoders)
    names = {e.model for e in entries} | {e.label for e in entries}
    for scoped in args.model_arg:
        name, colon, assignment = scoped.partition(":")
        if not colon or "=" not in assignment or name not in names:
            raise ValueError(
                f"--model-arg {scoped!r}: expected MODEL:KEY=VALUE with MODEL one "
                f"of the compared models {sorted(names)}, e.g. "
                f"{entries[0].label}:base_filters=32."
            )
    runs.check_output_dir(args.output_dir)
    run_root = os.path.join(args.output_dir, "runs")
    done_before = [
        e.label for e in entries if os.path.isdir(os.path.join(run_root, e.label))
    ]
    if done_before and not args.resume:
        raise runs.RunError(
            f"--output-dir {args.output_dir!r} holds runs of {done_before} "
            "already. Pass --resume to keep them and train the rest, or "
            "another --output-dir."
        )
    os.makedirs(run_root, exist_ok=True)
    check_settings(args)
    previous = _previous_rows(args.output_dir) if args.resume else {}
    rows = []
    for index, entry in enumerate(entries, 1):
        run_dir = os.path.join(run_root, entry.label)
        finished = os.path.isfile(runs.report_paths(run_dir)[0])
        if args.resume and finished:
            print(f"[{index}/{len(entries)}] {entry.label}: done before, kept")
            # Peak memory and wall time were measured by the earlier run.
            before = previous.get((entry.model, entry.encoder or "default"), {})
            peak, wall = (
                float(before.get(k) or 0) for k in ("peak_memory_mib", "wall_s")
            )
            rows.append(summarize(entry, run_dir, "ok", peak, wall, args.image_size))
            continue
        print(f"[{index}/{len(entries)}] {entry.label}: training ...", flush=True)
        log_path = os.path.join(run_root, f"{entry.label}.log")
        command = train_command(entry, args, run_root)
        if args.resume and os.path.isfile(os.path.join(run_dir, runs.CONFIG)):
            command = command[:4] + ["--resume", run_dir]
        code, peak, wall = run_training(command, log_path, entry.label)
        error = "" if code == 0 else _last_error(log_path)
        status = "ok" if code == 0 else "failed"
        row = summarize(entry, run_dir, status, peak, wall, args.image_size, error)
        print(
            f"[{index}/{len(entries)}] {entry.label}: {row['status']} in {wall:.0f} s"
            + (f" ({row['error']})" if row["error"] else ""),
            flush=True,
        )
        rows.append(row)
    write_table(rows, args.output_dir)
    written = ["comparison.md", "comparison.csv"]
    trained = any(row["status"] == "ok" for row in rows)
    if trained:
        plot_comparison(rows, os.path.join(args.output_dir, "comparison.png"))
        plot_predictions(
            rows,
            run_root,
            _test_split,
            os.path.join(args.output_dir, "predictions.png"),
        )
        written += ["comparison.png", "predictions.png"]
    with open(os.path.join(args.output_dir, "comparison.md")) as file:
        print(file.read())
    print(f"results in {args.output_dir}: {', '.join(written)}")
    if not trained:
        print("error: no model trained; each one's log is in runs/", file=sys.stderr)
    return rows


def owned_flags():
    """`{flag: why}` of the train flags compare gives every model itself,
    which `--train-args` may not hold."""
    shared = (
        "compare gives it to every model from its own flag: pass it to compare, "
        "before --train-args"
    )
    run_folders = (
        "compare puts each model's run in <its --output-dir>/runs/<model>; pass "
        "--output-dir to compare, before --train-args"
    )
    return {
        "--model": "compare trains each of --models (and --encoders) in turn",
        "--encoder": "compare crosses the models with --encoders",
        "--model-arg": "compare's own --model-arg MODEL:KEY=VALUE gives a builder "
        "argument to one model",
        "--output-dir": run_folders,
        "--run-name": run_folders,
        "--resume": "compare's own --resume (before --train-args) keeps the models "
        "done and trains the rest",
        **{flag(name): shared for name in COMPARE_SETTINGS},
    }


def check_train_args(train_args):
    """Raises `ValueError` for a flag of `--train-args` that compare owns."""
    owned = owned_flags()
    given = [item.split("=", 1)[0] for item in train_args if item.startswith("--")]
    clashes = [name for name in dict.fromkeys(given) if name in owned]
    if clashes:
        raise ValueError(
            "--train-args holds flags that compare sets itself: "
            + "; ".join(f"{name} ({owned[name]})" for name in clashes)
            + "."
        )


# The flags that shape every model's training: a resumed comparison keeps them.
SETTINGS = (*COMPARE_SETTINGS, "model_arg", "train_args")


def check_settings(args):
    """Writes the comparison's settings to `compare.json`; with `--resume`,
    refuses settings that differ from those the kept models were trained
    with (their rows would not be comparable)."""
    path = os.path.join(args.output_dir, "compare.json")
    # As JSON holds them: a (height, width) size is a list.
    current = {name: _plain(getattr(args, name)) for name in SETTINGS}
    saved = files.read_json(path)
    if args.resume and saved is not None:
        differ = [
            f"{flag(name)} {shown(name, current[name])} (was "
            f"{shown(name, saved.get(name))})"
            for name in SETTINGS
            if current[name] != saved.get(name)
        ]
        if differ:
            raise runs.RunError(
                f"--resume keeps the models trained with the earlier settings, "
                f"but these differ: {'; '.join(differ)}. Pass the same settings, "
                "or another --output-dir."
            )
    files.write_json(path, current)


def shown(name, value):
    """A comparison's setting in a message: as its flag takes it, or
    `not given` (each run picks its own)."""
    return "not given" if value is None else flag_value(name, value)


def _test_split(config):
    """The test split as the run of `config` (a `TrainConfig`) read it: its
    data, description and size (a described folder's is found by each run,
    so the comparison's own flags may not hold it)."""
    from tfseg.data.loading import load_splits  # may need TF

    return load_splits(config, splits=["test"])["test"]


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _previous_rows(output_dir):
    """Rows of an earlier comparison.csv, by (model, encoder)."""
    path = os.path.join(output_dir, "comparison.csv")
    if not os.path.isfile(path):
        return {}
    with open(path, newline="") as file:
        return {(row["model"], row["encoder"]): row for row in csv.DictReader(file)}


def _last_error(log_path):
    with open(log_path) as file:
        lines = [line.strip() for line in file if line.strip()]
    errors = [line for line in lines if "Error" in line or line.startswith("error:")]
    return (errors or lines or ["no output"])[-1][:300]
