"""Quality on real data: train on the shared sample's trainval list, score
on its test list, and print one table row per recipe.

    KERAS_HOME=<folder with models/ holding the MobileNetV2 weight files> \\
        python benchmarks/quality.py [--recipes best] [--output-dir runs/quality]

Every recipe runs through `tfseg.cli.main(["train", ...])`, the same code
path as the command line; the run folders keep everything (config, curves, metrics).
`../shared/data/keras_weights` has the alpha 0.35 and 0.5 ImageNet files:
copy them into `$KERAS_HOME/models/`, where Keras looks before downloading.
"""

import argparse
import os
import time

from tfseg import cli
from tfseg import runs
from tfseg.config import DEFAULT_IMAGE_SIZE

DATA_DIR = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "../../shared/data/oxford_iiit_pet")
)
RECIPES = {
    # MobileNetV2 (alpha 0.5, ImageNet) U-Net, encoder fine-tuned, CE + Dice,
    # augmentation, AdamW with warm-up and cosine decay.
    "best": [
        "--model",
        "mobilenet_unet",
        "--alpha",
        "0.5",
        "--epochs",
        "150",
        "--loss",
        "ce+dice",
    ],
    "best-50": [
        "--model",
        "mobilenet_unet",
        "--alpha",
        "0.5",
        "--epochs",
        "50",
        "--loss",
        "ce+dice",
    ],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipes", nargs="+", default=["best"], choices=sorted(RECIPES)
    )
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--image-size", default=str(DEFAULT_IMAGE_SIZE))
    parser.add_argument("--output-dir", default="runs/quality")
    args = parser.parse_args(argv)
    rows = []
    for recipe in args.recipes:
        start = time.time()
        run_dir = os.path.join(args.output_dir, recipe)
        code = cli.main(
            [
                "train",
                *RECIPES[recipe],
                "--data-dir",
                args.data_dir,
                "--image-size",
                args.image_size,
                "--output-dir",
                args.output_dir,
                "--run-name",
                recipe,
            ]
        )
        if code:
            raise SystemExit(code)
        minutes = (time.time() - start) / 60
        report = runs.read_json(os.path.join(run_dir, "metrics.json"))
        rows.append((recipe, minutes, report))
    print(
        "\n| recipe | wall min | resolution | pixel acc | mean IoU | IoU pet | "
        "IoU background | IoU border |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for recipe, minutes, report in rows:
        for key in ("training_resolution", "original_resolution"):
            scores = report[key]
            cells = [scores["pixel_accuracy"], scores["mean_iou"], *scores["iou"]]
            print(
                f"| {recipe} | {minutes:.1f} | {key.split('_')[0]} | "
                + " | ".join(f"{value:.3f}" for value in cells)
                + " |"
            )


if __name__ == "__main__":
    main()
