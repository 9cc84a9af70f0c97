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

import argparse
import csv
import dataclasses
import io
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import tfseg
from tfseg import runs
from tfseg.config import DEFAULT_IMAGE_SIZE
from tfseg.config import TrainConfig

COLUMNS = (
    "model",
    "encoder",
    "status",
    "parameters",
    "gmacs",
    "train_images_per_s",
    "latency_ms_batch1",
    "images_per_s_batch32",
    "peak_memory_mib",
    "pixel_accuracy",
    "mean_iou",
    "iou_pet",
    "iou_background",
    "iou_border",
    "wall_s",
    "backend",
    "precision",
    "device",
    "error",
)


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
    """The `tfseg train` command line of one entry."""
    command = [sys.executable, "-m", "tfseg", "train", "--model", entry.model]
    command += ["--image-size", str(args.image_size), "--epochs", str(args.epochs)]
    command += ["--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    command += ["--output-dir", run_root, "--run-name", entry.label]
    if entry.encoder:
        command += ["--encoder", entry.encoder]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if args.data_npz:
        command += ["--data-npz", args.data_npz]
    if args.synthetic:
        command += ["--synthetic", str(args.synthetic)]
    if args.max_examples:
        command += ["--max-examples", str(args.max_examples)]
    if args.time_budget:
        command += ["--time-budget", str(args.time_budget)]
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


def measure_speed(model, image_size, repeats=20):
    """Inference latency at batch 1 (ms) and throughput at batch 32 (img/s)."""
    results = []
    for batch, count in ((1, repeats), (32, max(repeats // 4, 3))):
        images = np.random.default_rng(0).uniform(
            0, 255, (batch, image_size, image_size, 3)
        )
        images = images.astype(np.float32)
        model.predict_on_batch(images)  # compile
        times = []
        for _ in range(count):
            start = time.perf_counter()
            model.predict_on_batch(images)
            times.append(time.perf_counter() - start)
        results.append(statistics.median(times))
    return 1000 * results[0], 32 / results[1]


def training_speed(run_dir, train_examples):
    """Training images/s: the median over the epochs after the first (the
    first compiles); `""` for a one-epoch run, which has no such epoch."""
    seconds = [float(row["epoch_seconds"]) for row in runs.history_rows(run_dir)]
    if len(seconds) < 2:
        return ""
    return round(train_examples / statistics.median(seconds[1:]), 1)


def summarize(entry, run_dir, status, peak_mib, wall_s, image_size, error=""):
    """One comparison row; measures the trained model when there is one."""
    import keras

    from tfseg.models import count_macs

    row = {column: "" for column in COLUMNS}
    row.update(
        model=entry.model,
        encoder=entry.encoder or "default",
        status=status,
        peak_memory_mib=round(peak_mib),
        wall_s=round(wall_s, 1),
        error=error,
        backend=keras.backend.backend(),
    )
    saved = runs.read_json(os.path.join(run_dir, runs.CONFIG))
    report = runs.read_json(runs.report_paths(run_dir)[0])
    if saved:
        row.update(
            precision=saved["precision"],
            device=", ".join(d["name"] for d in saved["devices"]),
        )
    if status != "ok" or report is None:
        return row
    model = runs.load_model(os.path.join(run_dir, runs.MODEL))
    latency, throughput = measure_speed(model, image_size)
    scores = report["training_resolution"]
    row.update(
        parameters=model.count_params(),
        gmacs=round(count_macs(model) / 1e9, 3),
        train_images_per_s=training_speed(run_dir, saved["examples"]["train"]),
        latency_ms_batch1=round(latency, 2),
        images_per_s_batch32=round(throughput, 1),
        pixel_accuracy=round(scores["pixel_accuracy"], 4),
        mean_iou=round(scores["mean_iou"], 4),
        **{
            f"iou_{name}": round(value, 4)
            for name, value in zip(report["class_names"], scores["iou"])
        },
    )
    return row


def write_table(rows, output_dir):
    """Writes `comparison.csv` and `comparison.md`."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    runs.atomic_write(os.path.join(output_dir, "comparison.csv"), table.getvalue())
    shown = [c for c in COLUMNS if c != "error"]
    lines = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    lines += ["| " + " | ".join(str(row[c]) for c in shown) + " |" for row in rows]
    lines += [
        "",
        "train_images_per_s: median over the epochs after the first, which "
        "compiles (blank for a one-epoch run). Latency and batch-32 speed: "
        "inference on this process's device. mean_iou: test split, training "
        "resolution.",
    ]
    failed = [row for row in rows if row["status"] != "ok"]
    if failed:
        lines += ["", "Failed:"] + [
            f"- {r['model']} ({r['encoder']}): {r['error']}" for r in failed
        ]
    runs.atomic_write(
        os.path.join(output_dir, "comparison.md"), "\n".join(lines) + "\n"
    )


def plot_comparison(rows, path):
    """Mean IoU against GMACs and against training images/s, one point each."""
    from tfseg.visualize import plt  # matplotlib, no display
    from tfseg.visualize import save_figure

    done = [row for row in rows if row["status"] == "ok"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, label in (
        (axes[0], "gmacs", "forward GMACs per image"),
        (axes[1], "train_images_per_s", "training images/s"),
    ):
        for row in done:
            if row[key] == "":
                continue
            name = row["model"] + (
                "" if row["encoder"] == "default" else f"/{row['encoder']}"
            )
            axis.scatter(float(row[key]), float(row["mean_iou"]))
            axis.annotate(
                name,
                (float(row[key]), float(row["mean_iou"])),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        axis.set_xlabel(label)
        axis.set_ylabel("test mean IoU")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path, dpi=90)


def plot_predictions(rows, run_root, splits_loader, path, count=4):
    """The same test images with each finished model's prediction."""
    from tfseg.evaluate import predict_logits
    from tfseg.visualize import save_prediction_grid

    done = [row for row in rows if row["status"] == "ok"]
    if not done:
        return
    test = splits_loader()
    shown = test.take(range(min(count, len(test))))
    predictions, titles = [], []
    for row in done:
        label = row["model"] + (
            "" if row["encoder"] == "default" else f"-{row['encoder']}"
        )
        model = runs.load_model(os.path.join(run_root, label, runs.MODEL))
        batches = [
            logits.argmax(-1) for _, logits in predict_logits(model, shown.images)
        ]
        predictions.append(np.concatenate(batches))
        titles.append(label)
    save_prediction_grid(
        path, shown.images, shown.masks, predictions, shown.names, titles
    )


def compare(args):
    """Runs the comparison described by parsed `args`; returns the rows."""
    from tfseg.models import list_models

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
        print(
            f"[{index}/{len(entries)}] {entry.label}: {status} in {wall:.0f} s"
            + (f" ({error})" if error else ""),
            flush=True,
        )
        rows.append(
            summarize(entry, run_dir, status, peak, wall, args.image_size, error)
        )
    write_table(rows, args.output_dir)
    written = ["comparison.md", "comparison.csv"]
    trained = any(row["status"] == "ok" for row in rows)
    if trained:
        plot_comparison(rows, os.path.join(args.output_dir, "comparison.png"))
        plot_predictions(
            rows,
            run_root,
            lambda: _test_split(args),
            os.path.join(args.output_dir, "predictions.png"),
        )
        written += ["comparison.png", "predictions.png"]
    with open(os.path.join(args.output_dir, "comparison.md")) as file:
        print(file.read())
    print(f"results in {args.output_dir}: {', '.join(written)}")
    if not trained:
        print("error: no model trained; each one's log is in runs/", file=sys.stderr)
    return rows


# The flags that shape every model's training: a resumed comparison keeps them.
SETTINGS = (
    "data_dir",
    "data_npz",
    "synthetic",
    "image_size",
    "epochs",
    "batch_size",
    "seed",
    "max_examples",
    "time_budget",
    "model_arg",
    "train_args",
)


def check_settings(args):
    """Writes the comparison's settings to `compare.json`; with `--resume`,
    refuses settings that differ from those the kept models were trained
    with (their rows would not be comparable)."""
    path = os.path.join(args.output_dir, "compare.json")
    current = {name: getattr(args, name) for name in SETTINGS}
    saved = runs.read_json(path)
    if args.resume and saved is not None:
        differ = [
            f"--{name.replace('_', '-')} {current[name]!r} (was {saved.get(name)!r})"
            for name in SETTINGS
            if current[name] != saved.get(name)
        ]
        if differ:
            raise runs.RunError(
                f"--resume keeps the models trained with the earlier settings, "
                f"but these differ: {'; '.join(differ)}. Pass the same settings, "
                "or another --output-dir."
            )
    runs.write_json(path, current)


def _test_split(args):
    from tfseg.data.loading import load_splits  # may need TF

    config = TrainConfig(
        data_dir=args.data_dir,
        data_npz=args.data_npz,
        synthetic=args.synthetic,
        image_size=args.image_size,
        seed=args.seed,
        max_examples=args.max_examples,
        output_dir=os.path.join(args.output_dir, "runs"),
    ).absolute()
    return load_splits(config, splits=["test"])["test"]


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


def _comma_list(text):
    return [item for item in text.split(",") if item]


def add_arguments(parser):
    """The flags of `tfseg compare`."""
    parser.add_argument(
        "--models",
        type=_comma_list,
        required=True,
        help="comma-separated, e.g. fcn8s,unet,mobilenet_unet",
    )
    parser.add_argument(
        "--encoders",
        type=_comma_list,
        help="cross models that take an encoder with these",
    )
    parser.add_argument("--data-dir", help="local dataset folder; default: TFDS")
    parser.add_argument(
        "--data-npz",
        metavar="FILE",
        help="splits from `export-data --out FILE` (no TensorFlow needed)",
    )
    parser.add_argument("--synthetic", type=int, default=0, metavar="N")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--max-examples", type=int)
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="MIN",
        help="fit each model's run, its test report included, into MIN "
        "minutes (`tfseg train --time-budget`; at most --epochs)",
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
