"""CamVid benchmark: a timed `tfseg train` run as one Markdown table row.

Trains on the SegNet tutorial's CamVid for a time budget and scores at the
original 360x480, void ignored.

    KERAS_HOME=<folder with models/ holding the MobileNetV2 weight files> \\
        python benchmarks/camvid.py --minutes 30 --seed 0
    python benchmarks/camvid.py --minutes 30 --seed 1 --extra="--crop none"
    python benchmarks/camvid.py --minutes 60 --seed 1 --extra="--image-size 352x480"
    python benchmarks/camvid.py --from-run runs/camvid/camvid_30min_s0   # score only
    python benchmarks/camvid.py --minutes 0.5 --max-examples 16 \\
        --image-size 64x96 --output-dir /tmp/camvid   # a smoke check

Runs, in a child process timed from its start to its exit,

    python -m tfseg train --data-dir CAMVID --dataset examples/camvid.json \\
        --time-budget MIN [--seed S] [--max-examples N] [--image-size HxW] [EXTRA]

every other flag at its default, its output in `<output-dir>/<run>.log`
(a run name already used is refused: pass `--run-name`).
Then it reads the run's `metrics.json` and prints one table row: the
budget and wall minutes, seed, epochs done, and at each image's original
resolution (360x480), void (11) ignored: mean IoU over the 11 classes, the
mean IoU of the four thin classes (Pole, SignSymbol, Pedestrian,
Bicyclist), class-average accuracy, global accuracy, frequency-weighted
IoU, and each thin class's IoU. The row goes to `--out` as JSON too
(default `<output-dir>/<run>.json`), with every class's IoU.

The shared folder has no test split (the official 233 test images are held
back), so tfseg scores its 101 val images (the SegNet tutorial's val list),
which it also validates on: the published figures printed beside are on
the official test split, a comparison of levels, not a tie.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.normpath(os.path.join(PROJECT_ROOT, "../shared/data/camvid"))
DATASET = os.path.join(PROJECT_ROOT, "examples", "camvid.json")
THIN = ("Pole", "SignSymbol", "Pedestrian", "Bicyclist")
ORIGINAL_PIXELS = 360 * 480
# (what, minutes, mean IoU at least, thin classes' mean IoU at least)
TARGETS = [("target", 30, 0.62, 0.30), ("stretch", 60, 0.66, None)]
# Published 11-class results on the official CamVid test split (SegNet,
# PAMI 2017, Tables 1 and 3): mean IoU, class-average and global accuracy.
PUBLISHED = [
    ("SegNet-Basic, from scratch, median-frequency weights", 47.7, 62.0, 82.7),
    ("SegNet, VGG16 ImageNet encoder, 3,433 extra images", 60.1, 71.2, 90.4),
]
COLUMNS = [
    "budget min", "wall min", "seed", "epochs", "mean IoU", "thin mIoU",
    "class avg acc", "global acc", "fw IoU", *(f"IoU {name}" for name in THIN),
]  # fmt: skip


def main(argv=None):
    """Trains (or reads `--from-run`), prints the row, writes `--out`.

    Returns:
        The row as a dict (what `--out` holds).

    Raises:
        SystemExit: when the training run fails, naming its log.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="--time-budget")
    parser.add_argument("--seed", type=int, help="--seed (default: tfseg's)")
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--dataset", default=DATASET)
    parser.add_argument("--output-dir", default="runs/camvid")
    parser.add_argument("--run-name", help="default camvid_<MIN>min[_s<SEED>]")
    parser.add_argument("--max-examples", type=int, help="for a quick check")
    parser.add_argument("--image-size", help="HxW, for a quick check")
    parser.add_argument("--extra", default="", help="more train flags, one string")
    parser.add_argument("--from-run", metavar="RUN", help="score a finished run")
    parser.add_argument("--out", help="the row as JSON (default <run>.json)")
    args = parser.parse_args(argv)
    if args.from_run:
        run_dir, wall_minutes = args.from_run.rstrip("/"), None
    else:
        run_dir, wall_minutes = train(args)
    row = read_row(run_dir, args.minutes if not args.from_run else None)
    row["wall_minutes"] = wall_minutes
    out = args.out or run_dir + ".json"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as file:
        json.dump(row, file, indent=1)
    print_row(row)
    print(f"\nrow written to {out}")
    return row


def train_command(args, run_name):
    """The `tfseg train` command line of a benchmark run."""
    flags = ["--data-dir", args.data_dir, "--dataset", args.dataset]
    flags += ["--time-budget", f"{args.minutes:g}"]
    if args.seed is not None:
        flags += ["--seed", str(args.seed)]
    if args.max_examples is not None:
        flags += ["--max-examples", str(args.max_examples)]
    if args.image_size:
        flags += ["--image-size", args.image_size]
    flags += ["--output-dir", args.output_dir, "--run-name", run_name]
    return [sys.executable, "-m", "tfseg", "train", *flags, *args.extra.split()]


def train(args):
    """Runs `tfseg train` in a child process. Returns `(run_dir, wall
    minutes)`."""
    seed = "" if args.seed is None else f"_s{args.seed}"
    run_name = args.run_name or f"camvid_{args.minutes:g}min{seed}"
    os.makedirs(args.output_dir, exist_ok=True)
    log_path = os.path.join(args.output_dir, f"{run_name}.log")
    env = dict(os.environ)  # this checkout's tfseg, installed or not
    env["PYTHONPATH"] = os.pathsep.join(
        [PROJECT_ROOT, *filter(None, [env.get("PYTHONPATH")])]
    )
    command = train_command(args, run_name)
    print(" ".join(command[1:]), flush=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    minutes = (time.perf_counter() - started) / 60
    if code:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise SystemExit(f"{tail}\n{run_name} failed (exit {code}); see {log_path}")
    return os.path.join(args.output_dir, run_name), minutes


def read_row(run_dir, budget=None):
    """The benchmark's numbers of a finished run folder.

    Args:
        run_dir: a run of `tfseg train` on CamVid.
        budget: the time budget in minutes. Defaults to `None`: the run's
            own `time_budget` from its config.json.

    Returns:
        dict: `run`, `budget_minutes`, `seed`, `epochs`, `images` (scored),
        `scored_split`, `pixels_per_image` (360 * 480 at the original resolution),
        `mean_iou`, `thin_mean_iou`, `class_average_accuracy`,
        `global_accuracy`, `frequency_weighted_iou`, `iou` (by class name).

    Raises:
        ValueError: for a run that did not finish or is not 11-class CamVid.
    """
    with open(os.path.join(run_dir, "metrics.json")) as file:
        report = json.load(file)
    with open(os.path.join(run_dir, "state.json")) as file:
        state = json.load(file)
    with open(os.path.join(run_dir, "config.json")) as file:
        config = json.load(file)["config"]
    names = report["class_names"]
    has_test = os.path.isdir(os.path.join(config["data_dir"] or "", "test"))
    if not state.get("finished") or not set(THIN) <= set(names) or len(names) != 11:
        raise ValueError(f"{run_dir!r} is not a finished 11-class CamVid run.")
    scores = report["original_resolution"]
    iou = dict(zip(names, scores["iou"]))
    thin = [iou[name] for name in THIN if not math.isnan(iou[name])]
    pixels = (scores["scored_pixels"] + scores["ignored_pixels"]) / report["images"]
    return {
        "run": os.path.abspath(run_dir),
        "budget_minutes": config.get("time_budget") if budget is None else budget,
        "seed": config["seed"],
        "epochs": state["epochs_done"],
        "images": report["images"],
        # Without a test split, the test report scores the val split.
        "scored_split": "test" if has_test else "val",
        "pixels_per_image": pixels,
        "ignored_pixels": scores["ignored_pixels"],
        "mean_iou": scores["mean_iou"],
        "thin_mean_iou": sum(thin) / len(thin) if thin else float("nan"),
        "class_average_accuracy": scores["class_average_accuracy"],
        "global_accuracy": scores["global_accuracy"],
        "frequency_weighted_iou": scores["frequency_weighted_iou"],
        "iou": iou,
    }


def row_cells(row):
    """The table cells of a row, in `COLUMNS` order."""

    def minutes(value):
        return "-" if value is None else f"{value:.1f}"

    numbers = [row[key] for key in ("mean_iou", "thin_mean_iou")]
    numbers += [row[key] for key in ("class_average_accuracy", "global_accuracy")]
    numbers += [row["frequency_weighted_iou"], *(row["iou"][name] for name in THIN)]
    head = [minutes(row["budget_minutes"]), minutes(row["wall_minutes"])]
    return [*head, str(row["seed"]), str(row["epochs"])] + [
        f"{value:.3f}" for value in numbers
    ]


def verdicts(row):
    """One line per target: met or not, for a run within its minutes."""
    lines = []
    for what, minutes, least, thin_least in TARGETS:
        wanted = f"mean IoU >= {least:.2f}" + (
            f", thin >= {thin_least:.2f}" if thin_least else ""
        )
        budget = row["budget_minutes"]
        if budget is None or budget > minutes:
            lines.append(f"{what} ({wanted} in {minutes} min): not this run's budget")
            continue
        met = row["mean_iou"] >= least and (
            thin_least is None or row["thin_mean_iou"] >= thin_least
        )
        lines.append(
            f"{what} ({wanted} in {minutes} min): {'met' if met else 'not met'}"
        )
    return lines


def print_row(row):
    """Prints the header, the row, the targets and the published figures."""
    print("\n| " + " | ".join(COLUMNS) + " |")
    print("|" + " ---: |" * len(COLUMNS))
    print("| " + " | ".join(row_cells(row)) + " |")
    at = f"{row['pixels_per_image']:.0f} px per image"
    if row["pixels_per_image"] != ORIGINAL_PIXELS:
        at += f" (not CamVid's {ORIGINAL_PIXELS}: scored on other data?)"
    held_back = (
        " (no test split in the folder: the official one is held back)"
        if row["scored_split"] == "val"
        else ""
    )
    print(
        f"\nScored {row['images']} {row['scored_split']} images{held_back}, {at}, "
        f"{row['ignored_pixels']:,} void pixels ignored."
    )
    for line in verdicts(row):
        print(line)
    print("\nPublished, official test split: mean IoU / class avg / global acc (%)")
    for name, mean_iou, class_average, global_accuracy in PUBLISHED:
        print(f"  {name}: {mean_iou} / {class_average} / {global_accuracy}")
    ours = [row["mean_iou"], row["class_average_accuracy"], row["global_accuracy"]]
    print("  this run: " + " / ".join(f"{100 * value:.1f}" for value in ours))


if __name__ == "__main__":
    main()
