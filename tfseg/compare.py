"""Compare models side by side: same data, split, seed, size and budget.

`python -m tfseg compare --models fcn8s,unet,mobilenet_unet` trains every
model through `train_pet.py` (each in its own process, so one failure or
crash leaves the others untouched and each gets its own peak memory), then
measures them on this process's device and writes into the output folder:

    comparison.csv, comparison.md   one row per model
    comparison.png                  mean IoU against GMACs and training speed
    predictions.png                 the same test images, one column per model
    runs/<label>/                   each model's full run folder
"""

import argparse
import csv
import dataclasses
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ENCODER_MODELS = ("fcn32s", "fcn16s", "fcn8s", "unet", "mobilenet_unet")
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
    """
    entries = []
    for model in models:
        if ":" in model:
            entries.append(Entry(*model.split(":", 1)))
        elif encoders and model in ENCODER_MODELS:
            entries += [Entry(model, encoder) for encoder in encoders]
        else:
            entries.append(Entry(model))
    return entries


def train_command(entry, args, run_root):
    """The `train_pet.py` command line of one entry."""
    command = [
        sys.executable,
        os.path.join(_project_root(), "train_pet.py"),
        "--model",
        entry.model,
        "--image-size",
        str(args.image_size),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        "--output-dir",
        run_root,
        "--run-name",
        entry.label,
    ]
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


def _project_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_training(command, log_path):
    """Runs one training process; returns `(exit code, peak RSS MiB, seconds)`."""
    start = time.time()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
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
    """Training images/s from the epoch times (the first epoch compiles)."""
    from tfseg.training import read_history  # noqa: PLC0415

    seconds = [float(row["epoch_seconds"]) for row in read_history(run_dir)]
    steady = seconds[1:] or seconds
    return train_examples / statistics.median(steady) if steady else float("nan")


def summarize(entry, run_dir, status, peak_mib, wall_s, image_size, error=""):
    """One comparison row; measures the trained model when there is one."""
    import keras  # noqa: PLC0415

    from tfseg.models import count_macs  # noqa: PLC0415
    from tfseg.training import read_json  # noqa: PLC0415

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
    saved = read_json(os.path.join(run_dir, "config.json"))
    report = read_json(os.path.join(run_dir, "metrics.json"))
    if saved:
        row.update(
            precision=saved["precision"],
            device=", ".join(d["name"] for d in saved["devices"]),
        )
    if status != "ok" or report is None:
        return row
    model = keras.models.load_model(os.path.join(run_dir, "model.keras"))
    latency, throughput = measure_speed(model, image_size)
    scores = report["training_resolution"]
    row.update(
        parameters=model.count_params(),
        gmacs=round(count_macs(model) / 1e9, 3),
        train_images_per_s=round(
            training_speed(run_dir, saved["examples"]["train"]), 1
        ),
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
    with open(os.path.join(output_dir, "comparison.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    shown = [c for c in COLUMNS if c != "error"]
    lines = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    lines += ["| " + " | ".join(str(row[c]) for c in shown) + " |" for row in rows]
    failed = [row for row in rows if row["status"] != "ok"]
    if failed:
        lines += ["", "Failed:"] + [
            f"- {r['model']} ({r['encoder']}): {r['error']}" for r in failed
        ]
    with open(os.path.join(output_dir, "comparison.md"), "w") as file:
        file.write("\n".join(lines) + "\n")


def plot_comparison(rows, path):
    """Mean IoU against GMACs and against training images/s, one point each."""
    from tfseg.visualize import plt  # noqa: PLC0415 - matplotlib, no display

    done = [row for row in rows if row["status"] == "ok"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, label in (
        (axes[0], "gmacs", "forward GMACs per image"),
        (axes[1], "train_images_per_s", "training images/s"),
    ):
        for row in done:
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
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_predictions(rows, run_root, splits_loader, path, count=4):
    """The same test images with each finished model's prediction."""
    import keras  # noqa: PLC0415

    from tfseg.evaluate import predict_logits  # noqa: PLC0415
    from tfseg.visualize import save_prediction_grid  # noqa: PLC0415

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
        model = keras.models.load_model(os.path.join(run_root, label, "model.keras"))
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
    from tfseg.models import list_models  # noqa: PLC0415

    unknown = sorted({m.split(":")[0] for m in args.models} - set(list_models()))
    if unknown:
        raise ValueError(f"Unknown model(s) {unknown}; available: {list_models()}.")
    os.makedirs(args.output_dir, exist_ok=True)
    run_root = os.path.join(args.output_dir, "runs")
    entries = plan(args.models, args.encoders)
    previous = _previous_rows(args.output_dir) if args.resume else {}
    rows = []
    for index, entry in enumerate(entries, 1):
        run_dir = os.path.join(run_root, entry.label)
        finished = os.path.isfile(os.path.join(run_dir, "metrics.json"))
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
        os.makedirs(run_root, exist_ok=True)
        log_path = os.path.join(run_root, f"{entry.label}.log")
        command = train_command(entry, args, run_root)
        if args.resume and os.path.isfile(os.path.join(run_dir, "last.keras")):
            command = command[:2] + ["--resume", run_dir]
        code, peak, wall = run_training(command, log_path)
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
    plot_comparison(rows, os.path.join(args.output_dir, "comparison.png"))
    plot_predictions(
        rows,
        run_root,
        lambda: _test_split(args),
        os.path.join(args.output_dir, "predictions.png"),
    )
    with open(os.path.join(args.output_dir, "comparison.md")) as file:
        print(file.read())
    return rows


def _test_split(args):
    from tfseg import training  # noqa: PLC0415

    config = training.TrainConfig(
        data_dir=args.data_dir,
        data_npz=args.data_npz,
        synthetic=args.synthetic,
        image_size=args.image_size,
        seed=args.seed,
        max_examples=args.max_examples,
        output_dir=os.path.join(args.output_dir, "runs"),
    )
    return training.load_data(config, None)["test"]


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


def add_arguments(parser):
    """The flags of `python -m tfseg compare`."""
    split = lambda text: [item for item in text.split(",") if item]  # noqa: E731
    parser.add_argument(
        "--models",
        type=split,
        required=True,
        help="comma-separated, e.g. fcn8s,unet,mobilenet_unet",
    )
    parser.add_argument(
        "--encoders", type=split, help="cross models that take an encoder with these"
    )
    parser.add_argument("--data-dir", help="local dataset folder; default: TFDS")
    parser.add_argument(
        "--data-npz",
        metavar="FILE",
        help="splits from `export-data --out FILE` (no TensorFlow needed)",
    )
    parser.add_argument("--synthetic", type=int, default=0, metavar="N")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-examples", type=int)
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="MIN",
        help="stop each model's training after MIN minutes",
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
        help="the rest goes to every train_pet.py",
    )
