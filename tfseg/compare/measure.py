"""What a comparison measures of each trained model: its size, compute,
speed (training, inference at batch 1 and 32) and test scores, as one row."""

import os
import statistics
import time

import numpy as np

from tfseg import files
from tfseg import runs

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
    saved = files.read_json(os.path.join(run_dir, runs.CONFIG))
    report = files.read_json(runs.report_paths(run_dir)[0])
    if saved:
        row.update(
            precision=saved["precision"],
            device=", ".join(d["name"] for d in saved["devices"]),
        )
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
            f"iou_{name}": round(value, 4)
            for name, value in zip(report["class_names"], scores["iou"])
        },
    )
    return row
