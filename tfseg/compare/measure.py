"""What a comparison measures of each trained model: its size, compute,
speed (training, inference at batch 1 and 32) and test scores, as one row.

A row's per-class IoU columns are `iou_<class name>`, named by the run's
classes (the test report's `class_names`): `iou_pet`, `iou_background`,
`iou_border` for Oxford-IIIT Pet, `iou_Sky` ... for a described dataset.
"""

import os
import statistics
import time

import numpy as np

from tfseg import files
from tfseg import runs
from tfseg.config import PET_CLASS_NAMES
from tfseg.config import TrainConfig
from tfseg.config import image_shape

# The columns before the per-class IoU ones, and after them.
LEADING_COLUMNS = (
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
)
TRAILING_COLUMNS = ("wall_s", "backend", "precision", "device", "error")


def iou_column(class_name):
    """The column of a class's test IoU: `iou_<name>`."""
    return f"iou_{class_name}"


def columns(class_names=PET_CLASS_NAMES):
    """Every column of a comparison of models of these classes, in order.

    Args:
        class_names: the classes' names in id order. Defaults to the pets'.

    Returns:
        A tuple of column names.
    """
    iou = tuple(iou_column(name) for name in class_names)
    return (*LEADING_COLUMNS, *iou, *TRAILING_COLUMNS)


# The columns of a comparison on Oxford-IIIT Pet.
COLUMNS = columns()


def table_columns(rows):
    """The columns of a table of `rows`: the IoU columns its rows hold (in
    their order; none where no row knows its classes) between the others."""
    iou = []
    for row in rows:
        iou += [key for key in row if key.startswith("iou_") and key not in iou]
    return (*LEADING_COLUMNS, *iou, *TRAILING_COLUMNS)


def measure_speed(model, image_size, repeats=20):
    """Inference latency at batch 1 (ms) and throughput at batch 32 (img/s).

    Args:
        model: a Keras model.
        image_size: a side, or `(height, width)`: the model's input size.
        repeats: timed batch-1 calls (batch 32: a quarter, at least 3).
            Defaults to 20.

    Returns:
        `(milliseconds per image at batch 1, images per second at batch 32)`,
        medians over the calls after the first (which compiles).
    """
    height, width = image_shape(image_size)
    results = []
    for batch, count in ((1, repeats), (32, max(repeats // 4, 3))):
        images = np.random.default_rng(0).uniform(0, 255, (batch, height, width, 3))
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
    """One comparison row; measures the trained model when there is one.

    Args:
        entry: the `Entry` (model, encoder).
        run_dir: its run folder (it may lack files: a failed run).
        status: `"ok"` or `"failed"`, as its training ended.
        peak_mib: its training process's peak memory, MiB.
        wall_s: its training's wall time, seconds.
        image_size: the comparison's `--image-size` (a side or `(height,
            width)`); the run's own `config.json` says it where it exists.
        error: why it failed. Defaults to `""`.

    Returns:
        `{column: value}`: `columns(the run's class names)`, or with no IoU
        column where the run wrote no `config.json`.
    """
    import keras

    from tfseg.models import count_macs

    saved = files.read_json(os.path.join(run_dir, runs.CONFIG))
    config = _config(saved)
    names = config.class_names if config else ()
    row = {column: "" for column in columns(names)}
    row.update(
        model=entry.model,
        encoder=entry.encoder or "default",
        status=status,
        peak_memory_mib=round(peak_mib),
        wall_s=round(wall_s, 1),
        error=error,
        backend=keras.backend.backend(),
    )
    report = files.read_json(runs.report_paths(run_dir)[0])
    if saved:
        row.update(
            precision=saved["precision"],
            device=", ".join(d["name"] for d in saved["devices"]),
        )
    if config:
        image_size = config.image_size
    if status == "ok" and report is None:  # never "ok" without its scores
        report_file = runs.report_paths(run_dir)[0]
        row.update(
            status="failed", error=f"trained, but wrote no test report ({report_file})"
        )
    if row["status"] != "ok":
        return row
    model = files.load_model(os.path.join(run_dir, runs.MODEL))
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
            iou_column(name): round(value, 4)
            for name, value in zip(report["class_names"], scores["iou"])
        },
    )
    return row


def _config(saved):
    """The `TrainConfig` of a run's `config.json` record, or `None` (no
    record, or one another tfseg wrote)."""
    try:
        return TrainConfig.from_dict(saved["config"]) if saved else None
    except (KeyError, TypeError, ValueError):
        return None
