"""Does the input pipeline keep up with training on CamVid, on this machine?

    python benchmarks/camvid_pipeline.py [--data-dir ../shared/data/camvid]
        [--image-size 352x480] [--run RUN_DIR] [--repeats 3] [--out FILE.json]

Measured in one process, so the ratios hold on a noisy machine:
1. Decoding: the first load of the 468 frames (train, val and the test
   report's copy of val, the val masks kept at full size too), through
   `load_splits` as `tfseg train` reads them (described by
   `examples/camvid.json`), in seconds.
2. Serving: cached augmented training epochs of `make_dataset` (batch 16,
   the default, shuffle, flip, zoom, crop, rotation, colour), images/s,
   best of `--repeats` after one compiling epoch.
3. Against the model: with `--run`, the training step rate of that run
   (images/s of its steady epochs in `history.csv`, `epoch_seconds`), and
   the pipeline's headroom, serving rate / training rate (above 1: training
   never waits on data).
"""

import argparse
import csv
import json
import os
import statistics
import time

from tfseg.config import DEFAULT_BATCH_SIZE
from tfseg.config import TrainConfig
from tfseg.config import format_size
from tfseg.config import parse_size
from tfseg.data.augment import Augmentation
from tfseg.data.loading import load_splits
from tfseg.data.pipeline import make_dataset

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.normpath(os.path.join(PROJECT_ROOT, "../shared/data/camvid"))
DATASET = os.path.join(PROJECT_ROOT, "examples", "camvid.json")


def training_rate(run_dir, train_images, batch_size):
    """Median images/s of a run's epochs after the first (which compiles)."""
    with open(os.path.join(run_dir, "history.csv"), newline="") as rows:
        seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(rows)]
    steady = seconds[1:] or seconds
    served = train_images // batch_size * batch_size
    return served / statistics.median(steady)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--dataset", default=DATASET)
    parser.add_argument("--image-size", type=parse_size, default=(352, 480))
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", help="a CamVid run folder: its training rate")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)

    config = TrainConfig(
        data_dir=args.data_dir, dataset=args.dataset, image_size=args.image_size
    )
    start = time.perf_counter()
    splits = load_splits(config, progress=False)
    decoding = time.perf_counter() - start
    train = splits["train"]
    dataset = make_dataset(
        train, args.batch_size, training=True, augmentation=Augmentation(), seed=0
    )
    served = len(train) // args.batch_size * args.batch_size
    for _ in dataset:  # compiles the augmentation
        pass
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in dataset:
            pass
        times.append(time.perf_counter() - start)
    figures = {
        "image_size": format_size(args.image_size),
        "frames_decoded": sum(len(examples) for examples in splits.values()),
        "decoding_s": round(decoding, 2),
        "serving_images_per_s": round(served / min(times), 1),
    }
    if args.run:
        rate = training_rate(args.run, len(train), args.batch_size)
        figures["training_images_per_s"] = round(rate, 2)
        figures["headroom"] = round(figures["serving_images_per_s"] / rate, 1)
    if args.out:
        with open(args.out, "w") as file:
            json.dump(figures, file, indent=2)
    print("| " + " | ".join(figures) + " |")
    print("|" + " --- |" * len(figures))
    print("| " + " | ".join(str(value) for value in figures.values()) + " |")


if __name__ == "__main__":
    main()
