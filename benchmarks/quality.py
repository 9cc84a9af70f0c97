"""Time to quality on real data: train on the shared sample's trainval list,
score on its test list at each image's original resolution, and print one
table row per run (wall minutes, everything included).

    KERAS_HOME=<folder with models/ holding the MobileNetV2 weight files> \\
        python benchmarks/quality.py --recipes tfseg-5min tutorial --seeds 0 1 \\
        --tta --output-dir runs/quality
    python benchmarks/quality.py --recipes old-best tfseg-30min --snapshots \\
        --output-dir runs/quality
    python benchmarks/quality.py --figure docs/figures/time_to_quality.png \\
        --output-dir runs/quality

Each run is `python -m tfseg train ...` in a child process, timed from its
start to its exit, so start-up, data decoding, compilation and the test
report are in the wall time. `--tta` then scores the run with `tfseg
evaluate RUN --tta flip` (its time is not in the run's). `--snapshots` keeps
the weights scored after each epoch (the weight average with `--ema`) and
the time they were written, and `--figure` scores them on the test split
(original resolution) for the curve of test mean IoU against wall minutes.
Writing a snapshot costs about 0.1 s an epoch, inside the wall time.

Every run's numbers are appended to `<output-dir>/results.json`.
`../shared/data/keras_weights` has the alpha 0.35 and 0.5 ImageNet files:
copy them into `$KERAS_HOME/models/`, where Keras looks before downloading.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from tfseg.files import read_json

DATA_DIR = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "../../shared/data/oxford_iiit_pet")
)
# The best recipe before issue 11 (150 epochs, one rate, the tutorial's
# decoder), every setting spelled out.
OLD_BEST = [
    *("--alpha", "0.5", "--loss", "ce+dice", "--epochs", "150"),
    *("--learning-rate", "1e-3", "--encoder-lr-scale", "1", "--ema", "0"),
    *("--warmup-epochs", "1", "--image-size", "128", "--batch-size", "16"),
    *("--model-arg", "decoder_filters=[512, 256, 128, 64]"),
]
RECIPES = {
    # `tfseg train --data-dir DIR --time-budget 5`, every other flag at its
    # default: the 5-minute target.
    "tfseg-5min": ["--time-budget", "5"],
    "tfseg-30min": ["--time-budget", "30"],
    "tfseg-30min-160px": ["--time-budget", "30", "--image-size", "160"],
    "tfseg-30min-192px": ["--time-budget", "30", "--image-size", "192"],
    "tfseg-30min-224px": ["--time-budget", "30", "--image-size", "224"],
    "old-best": OLD_BEST,
    "old-best-5min": [*OLD_BEST, "--time-budget", "5"],
    "tutorial": ["--recipe", "tutorial"],
    # The same on the alpha 0.5 encoder: the shared data has no alpha 1.0
    # ImageNet file, and these machines cannot download it.
    "tutorial-alpha0.5": ["--recipe", "tutorial", "--alpha", "0.5"],
}
SNAPSHOTS = "snapshots"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=[], choices=sorted(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--output-dir", default="runs/quality")
    parser.add_argument("--tta", action="store_true", help="also score with flips")
    parser.add_argument(
        "--snapshots", action="store_true", help="keep each epoch's weights"
    )
    parser.add_argument("--figure", metavar="PNG", help="draw the curves here")
    parser.add_argument(
        "--points", type=int, default=10, help="snapshots scored per run (evenly)"
    )
    parser.add_argument(
        "--extra", default="", help="more train flags, e.g. for a quick check"
    )
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    rows = []
    for recipe in args.recipes:
        for seed in args.seeds:
            rows.append(run_recipe(args, recipe, seed))
            save_results(args.output_dir, rows[-1])
    if rows:
        print_table(rows)
    if args.figure:
        draw_figure(args.output_dir, args.figure, args.points)


def run_recipe(args, recipe, seed):
    name = f"{recipe}_s{seed}"
    run_dir = os.path.join(args.output_dir, name)
    flags = [*RECIPES[recipe], "--data-dir", args.data_dir, "--seed", str(seed)]
    flags += ["--output-dir", args.output_dir, "--run-name", name]
    flags += args.extra.split()
    child = [sys.executable, os.path.abspath(__file__), "--child"]
    if args.snapshots:
        child.append("--snapshots")
    start = time.perf_counter()
    with open(os.path.join(args.output_dir, f"{name}.log"), "w") as log:
        code = subprocess.call([*child, "train", *flags], stdout=log, stderr=log)
    minutes = (time.perf_counter() - start) / 60
    if code:
        raise SystemExit(f"{name} failed (exit {code}); see its .log")
    report = read_json(os.path.join(run_dir, "metrics.json"))
    state = read_json(os.path.join(run_dir, "state.json"))
    row = {
        "run": name,
        "recipe": recipe,
        "seed": seed,
        "wall_minutes": minutes,
        "epochs": state["epochs_done"],
        "best_epoch": state.get("best_epoch"),
        "report_seconds": state.get("report_seconds"),
        "plain": report["original_resolution"],
        "plain_training_resolution": report["training_resolution"],
    }
    if args.tta:
        start = time.perf_counter()
        command = [sys.executable, "-m", "tfseg", "evaluate", run_dir, "--tta", "flip"]
        subprocess.run(command, check=True, capture_output=True)
        row["tta_seconds"] = time.perf_counter() - start
        flipped = read_json(os.path.join(run_dir, "metrics_tta-flip.json"))
        row["tta"] = flipped["original_resolution"]
    return row


def print_table(rows):
    print(
        "\n| run | wall min | epochs | pixel acc | mean IoU | IoU pet | "
        "IoU background | IoU border | mean IoU, flip TTA | IoU border, flip TTA |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        plain = row["plain"]
        cells = [plain["pixel_accuracy"], plain["mean_iou"], *plain["iou"]]
        flips = row.get("tta")
        tta = f"{flips['mean_iou']:.3f} | {flips['iou'][2]:.3f}" if flips else "- | -"
        print(
            f"| {row['run']} | {row['wall_minutes']:.2f} | {row['epochs']} | "
            + " | ".join(f"{value:.3f}" for value in cells)
            + f" | {tta} |"
        )


def save_results(output_dir, row):
    path = os.path.join(output_dir, "results.json")
    rows = read_json(path, default=[])
    rows = [r for r in rows if r["run"] != row["run"]] + [row]
    with open(path, "w") as file:
        json.dump(rows, file, indent=1)


# ---------------------------------------------------------------------------
# In the child: `tfseg train`, with each epoch's scored weights kept.


def child(argv):
    snapshots = argv[0] == "--snapshots"
    argv = argv[1:] if snapshots else argv
    started = time.monotonic()
    if snapshots:
        keep_snapshots(started)
    from tfseg.cli import main as tfseg_main

    return tfseg_main(argv)


def keep_snapshots(started):
    """Makes every run checkpoint also write `snapshots/epoch_NNN.weights.h5`
    (the weights validation scored) and `snapshots/times.json` (seconds
    from the process's start to each epoch's end)."""
    from tfseg.train import callbacks
    from tfseg.train import fitting

    class SnapshotCheckpoint(callbacks.RunCheckpoint):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            folder = os.path.join(self.run_dir, SNAPSHOTS)
            os.makedirs(folder, exist_ok=True)
            with callbacks.AveragedWeights(self.model):
                self.model.save_weights(
                    os.path.join(folder, f"epoch_{epoch + 1:03d}.weights.h5")
                )
            times_path = os.path.join(folder, "times.json")
            times = read_json(times_path, default={})
            times[str(epoch + 1)] = time.monotonic() - started
            with open(times_path, "w") as file:
                json.dump(times, file)

    fitting.RunCheckpoint = SnapshotCheckpoint


# ---------------------------------------------------------------------------
# The figure: test mean IoU against wall minutes.


def score_snapshots(run_dir, points):
    """`[(minutes, test mean IoU at original resolution)]` of `points`
    snapshots spread evenly (the first and last among them), cached in
    `snapshots/scores.json`."""
    from tfseg import runs
    from tfseg.data.loading import load_splits
    from tfseg.evaluate import evaluate_model

    folder = os.path.join(run_dir, SNAPSHOTS)
    cache_path = os.path.join(folder, "scores.json")
    cache = read_json(cache_path, default={})
    times = read_json(os.path.join(folder, "times.json"))
    epochs = sorted(int(epoch) for epoch in times)
    step = max(len(epochs) // max(points - 1, 1), 1)
    chosen = sorted(set(epochs[::step]) | {epochs[-1]})
    config, model = runs.open_run(run_dir)
    test = None
    for epoch in chosen:
        if str(epoch) in cache:
            continue
        if test is None:
            test = load_splits(config, splits=["test"])["test"]
        model.load_weights(os.path.join(folder, f"epoch_{epoch:03d}.weights.h5"))
        report = evaluate_model(model, test, progress=False)
        cache[str(epoch)] = report["original_resolution"]["mean_iou"]
        with open(cache_path, "w") as file:
            json.dump(cache, file)
    return [(times[str(e)] / 60, cache[str(e)]) for e in chosen]


def draw_figure(output_dir, path, points):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_json(os.path.join(output_dir, "results.json"))
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for row in rows:
        run_dir = os.path.join(output_dir, row["run"])
        if os.path.isdir(os.path.join(run_dir, SNAPSHOTS)):
            minutes, scores = zip(*score_snapshots(run_dir, points))
            axis.plot(minutes, scores, marker=".", label=row["run"])
        axis.scatter(
            [row["wall_minutes"]], [row["plain"]["mean_iou"]], marker="x", color="k"
        )
    for minutes, target in ((5, 0.70), (30, 0.76)):
        axis.plot([minutes], [target], marker="*", markersize=12, color="tab:red")
    axis.set_xlabel("wall minutes on 2 CPU cores (start-up to test report)")
    axis.set_ylabel("test mean IoU (original resolution)")
    axis.set_ylim(0.3, 0.8)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    axis.set_title("Time to quality on the shared sample (x: final report; *: targets)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"figure written to {path}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child(sys.argv[2:]))
    main()
