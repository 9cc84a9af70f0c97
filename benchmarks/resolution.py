"""At which resolution to segment: the training size, resized back, or each
image at its own size, padded (fully convolutional inference).

    python benchmarks/resolution.py RUN_DIR [--data-dir DIR] [--dataset FILE]
        [--max-examples N] [--latency-images N] [--out DIR]

Scores the run's model on the test split (the run's own, or `--data-dir`'s;
for CamVid the val split, 101 frames of 360x480, void ignored) the way
`tfseg evaluate --resolution MODE` does (`tfseg.evaluate.evaluate_model`):

- `model`: each image resized to the training size, the logits resized
  back to the original size;
- `image reflect` (the `image` mode) and `image zero`: each image at its
  own size padded to the model's multiple, with mirrored or black borders.

All are scored at the original resolution, so the numbers compare. Timings:
`evaluate s/image` is the wall time of each scoring pass over the split
(evaluate's batches) per image; `latency ms` the median time of
`tfseg.inference.segment` on one image read from its file (batch 1, as
`tfseg predict` and the demo run it), resize or pad included, the modes
taking turns image by image after a warm-up so a slow spell of a shared
machine hits them alike; `rebuild s` what `image` pays once per padded
size (the network cloned at that size, the weights copied). `evaluate
s/image` of `model` leaves out the resize of the images, which the data
pipeline did when it read them. Prints a Markdown table and writes the
details to `--out`/resolution.json.
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

# (label, resolution, pad)
MODES = [
    ("model", "model", "reflect"),
    ("image reflect", "image", "reflect"),
    ("image zero", "image", "zero"),
]


def load(run_dir, data_dir=None, dataset=None, max_examples=None):
    """`(config, model, test, images)`: the run, its test split and the
    split's images at their own size, read from their files."""
    from tfseg import runs
    from tfseg.data.described import describe_data
    from tfseg.data.loading import load_splits
    from tfseg.evaluate import check_same_classes
    from tfseg.evaluate import with_data
    from tfseg.inference import ImageFiles
    from tfseg.inference import image_files

    config, model = runs.open_run(run_dir)
    own = config
    if data_dir:
        config = with_data(config, data_dir, cache_dir=None)
        config = describe_data(
            dataclasses.replace(
                config, description=None, dataset=dataset and os.path.abspath(dataset)
            ),
            fallback=own.description,
        )
        check_same_classes(own, config, data_dir)
    config = dataclasses.replace(config, max_examples=max_examples)
    test = load_splits(config, splits=["test"], progress=False)["test"]
    files = ImageFiles(image_files(config, test))
    # Decoded once, before any timing (the pipeline decoded `test` too).
    return config, model, test, [files[index] for index in range(len(files))]


def score(model, test, images, config):
    """`{label: report}` of every mode, with `evaluate_seconds`."""
    from tfseg.evaluate import evaluate_model

    reports = {}
    for label, resolution, pad in MODES:
        started = time.perf_counter()
        reports[label] = evaluate_model(
            model,
            test,
            config.batch_size,
            progress=False,
            class_names=config.class_names,
            resolution=resolution,
            images=images,
            pad=pad,
        )
        reports[label]["evaluate_seconds"] = time.perf_counter() - started
        scores = reports[label]["original_resolution"]
        print(f"{label}: mean IoU {scores['mean_iou']:.4f}", flush=True)
    return reports


def latency(model, images, count):
    """`{label: {"rebuild_s", "ms": [...]}}`: `segment` on one image at a
    time, the modes taking turns."""
    from tfseg.inference import NativeResolution
    from tfseg.inference import segment

    timings = {label: {"ms": [], "rebuild_s": 0.0} for label, _, _ in MODES}
    for label, resolution, pad in MODES:
        if resolution == "image":  # a fresh rebuild, timed
            native = NativeResolution(model, pad)
            started = time.perf_counter()
            native.model_at(native.padded_size(images[0].shape[:2]))
            timings[label]["rebuild_s"] = time.perf_counter() - started
        segment(model, images[0], resolution=resolution, pad=pad)  # warm-up
    for index in range(min(count, len(images))):
        image = images[index]
        for label, resolution, pad in MODES:
            started = time.perf_counter()
            segment(model, image, resolution=resolution, pad=pad)
            timings[label]["ms"].append(1000 * (time.perf_counter() - started))
    return timings


def summary(config, model, test, images, reports, timings):
    """The JSON written: settings, sizes, and per mode its scores and times."""
    from tfseg.inference import native_resolution

    sizes = {}
    for mask in test.original_masks:
        key = "x".join(map(str, mask.shape[:2]))
        sizes[key] = sizes.get(key, 0) + 1
    runner = native_resolution(model)
    padded = {
        size: "x".join(map(str, runner.padded_size(map(int, size.split("x")))))
        for size in sizes
    }
    modes = {}
    for label, resolution, pad in MODES:
        report, timing = reports[label], timings[label]
        scores = report["original_resolution"]
        modes[label] = {
            "resolution": resolution,
            "pad": pad if resolution == "image" else None,
            "mean_iou": scores["mean_iou"],
            "global_accuracy": scores["pixel_accuracy"],
            "class_average_accuracy": scores.get("class_average_accuracy"),
            "frequency_weighted_iou": scores.get("frequency_weighted_iou"),
            "iou": dict(zip(report["class_names"], scores["iou"])),
            "evaluate_seconds_per_image": report["evaluate_seconds"] / len(test),
            "latency_ms_median": statistics.median(timing["ms"]),
            "latency_ms": timing["ms"],
            "rebuild_s": timing["rebuild_s"],
        }
        if "training_resolution" in report:
            modes[label]["training_resolution_mean_iou"] = report[
                "training_resolution"
            ]["mean_iou"]
    return {
        "model": config.model,
        "training_size": list(config.image_shape),
        "multiple": list(runner.multiple),
        "images": len(test),
        "image_sizes": sizes,
        "padded_sizes": padded,
        "data": config.data_dir,
        "batch_size": config.batch_size,
        "cpu_count": os.cpu_count(),
        "modes": modes,
    }


def table(result):
    """A Markdown table of `summary`'s result."""
    lines = [
        f"{result['model']} trained at {'x'.join(map(str, result['training_size']))}"
        f", {result['images']} images {result['image_sizes']} (padded to "
        f"{result['padded_sizes']}), scored at the original resolution.",
        "",
        "| mode | mean IoU | global acc | class acc | evaluate s/image "
        "| latency ms (median) | rebuild s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, mode in result["modes"].items():
        lines.append(
            f"| {label} | {mode['mean_iou']:.4f} | {mode['global_accuracy']:.4f} "
            f"| {mode['class_average_accuracy']:.4f} "
            f"| {mode['evaluate_seconds_per_image']:.3f} "
            f"| {mode['latency_ms_median']:.0f} | {mode['rebuild_s']:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished run folder")
    parser.add_argument("--data-dir", help="score this folder's test split instead")
    parser.add_argument("--dataset", help="with --data-dir: its description")
    parser.add_argument(
        "--max-examples", type=int, help="at most N test images (default: all)"
    )
    parser.add_argument(
        "--latency-images", type=int, default=10, help="images timed one by one"
    )
    parser.add_argument("--out", default=".", help="folder for resolution.json")
    args = parser.parse_args(argv)
    config, model, test, images = load(
        args.run_dir, args.data_dir, args.dataset, args.max_examples
    )
    reports = score(model, test, images, config)
    timings = latency(model, images, args.latency_images)
    result = summary(config, model, test, images, reports, timings)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "resolution.json")
    with open(path, "w") as file:
        json.dump(result, file, indent=2)
    print(table(result))
    print(f"details written to {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
