"""What a comparison writes: `comparison.csv`, `comparison.md`, and the
figures `comparison.png` and `predictions.png`, in the classes' own names
and colours (the trained runs' `config.json`)."""

import csv
import io
import os

import numpy as np

from tfseg import files
from tfseg import runs
from tfseg.compare.measure import table_columns


def write_table(rows, output_dir):
    """Writes `comparison.csv` and `comparison.md`: one row per model, an
    `iou_<class>` column per class of the runs' data (`table_columns`).

    Args:
        rows: the rows of `tfseg.compare.measure.summarize`.
        output_dir: the comparison's folder.
    """
    fields = table_columns(rows)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    files.atomic_write(os.path.join(output_dir, "comparison.csv"), table.getvalue())
    shown = [c for c in fields if c != "error"]
    lines = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    lines += [
        "| " + " | ".join(str(row.get(c, "")) for c in shown) + " |" for row in rows
    ]
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
    files.atomic_write(
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
    """The same test images with each finished model's prediction, in the
    classes' names and colours of the first finished run (every model of a
    comparison trains on the same data).

    Args:
        rows: the comparison's rows.
        run_root: the folder of the runs (`<output-dir>/runs`).
        splits_loader: a call of the first finished run's `TrainConfig`
            returning the test split's `Examples`, as that run read it.
        path: the PNG to write.
        count: test images shown. Defaults to 4.
    """
    from tfseg.inference import predict_logits
    from tfseg.visualize import save_prediction_grid

    done = [row for row in rows if row["status"] == "ok"]
    if not done:
        return
    labels = [
        row["model"] + ("" if row["encoder"] == "default" else f"-{row['encoder']}")
        for row in done
    ]
    config = runs.read_config(os.path.join(run_root, labels[0]))[0]
    test = splits_loader(config)
    shown = test.take(range(min(count, len(test))))
    predictions = []
    for label in labels:
        model = files.load_model(os.path.join(run_root, label, runs.MODEL))
        batches = [
            logits.argmax(-1) for _, logits in predict_logits(model, shown.images)
        ]
        predictions.append(np.concatenate(batches))
    save_prediction_grid(
        path,
        shown.images,
        shown.masks,
        predictions,
        shown.names,
        labels,
        class_names=config.class_names,
        colors=config.class_colors,
    )
