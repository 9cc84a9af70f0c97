"""What an exported model costs: size, quality and CPU latency, side by side.

    python benchmarks/export_quality.py RUN_DIR [--data-dir DIR] [--out DIR]

Exports the run's model as TFLite float32, float16, dynamic-range and int8
(and ONNX), scores each with the runtime a user deploys with (LiteRT's
interpreter, onnxruntime) on the test split, exactly as `tfseg evaluate
FILE` does, and times one image at a time (batch 1) with 1 and 2 CPU
threads. The Keras model is the baseline of every delta. Latency runs in a
fresh process per thread count (TensorFlow fixes its thread pools once per
process); in each, the formats take turns round by round, so a slow spell of
a shared machine hits them all alike. Prints one Markdown table last and
writes the details to `--out`/export_quality.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

# (label, --format, --quantize); the Keras model is the first row.
VARIANTS = [
    ("TFLite float32", "tflite", "none"),
    ("TFLite float16", "tflite", "float16"),
    ("TFLite dynamic", "tflite", "dynamic"),
    ("TFLite int8", "tflite", "int8"),
    ("ONNX float32", "onnx", "none"),
]
KERAS = "Keras float32"
BORDER = 2  # class index of the border in the 3-class trimap


def export_all(run_dir, out, data_dir):
    """Exports every variant into `out`; returns `{label: path}`."""
    from tfseg.deploy.export import default_path
    from tfseg.deploy.export import export_run

    paths = {}
    for label, export_format, quantize in VARIANTS:
        target = os.path.join(
            out,
            os.path.basename(default_path(run_dir, export_format, quantize, "logits")),
        )
        started = time.perf_counter()
        export_run(
            run_dir,
            export_format,
            target,
            quantize=quantize,
            data_dir=data_dir if quantize == "int8" else None,
        )
        print(f"{label}: exported in {time.perf_counter() - started:.1f} s")
        paths[label] = target
    return paths


def score_all(run_dir, paths, data_dir):
    """`{label: report}` of the Keras model and every export on the test
    split, through `tfseg.evaluate.evaluate_model`."""
    import dataclasses

    from tfseg import runs
    from tfseg.data.loading import load_splits
    from tfseg.deploy.runtimes import load_deployed
    from tfseg.evaluate import evaluate_model

    config, model = runs.open_run(run_dir)
    if data_dir:
        config = dataclasses.replace(config, data_dir=os.path.abspath(data_dir))
    test = load_splits(config, splits=["test"], progress=False)["test"]
    reports = {KERAS: evaluate_model(model, test, progress=False)}
    for label, path in paths.items():
        reports[label] = evaluate_model(load_deployed(path), test, progress=False)
        print(f"{label}: scored")
    return reports


def time_latency(run_dir, paths, threads, rounds, calls):
    """Median seconds of one batch-1 call per variant, in this process with
    `threads` CPU threads (called in a fresh process per thread count)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tfseg import runs
    from tfseg.deploy.runtimes import load_deployed

    _, model = runs.open_run(run_dir)
    keras_call = tf.function(lambda images: model(images, training=False))
    runners = {KERAS: lambda image: keras_call(image).numpy()}
    for label, path in paths.items():
        runners[label] = load_deployed(path, threads=threads)
    size = model.input_shape[1:]
    image = np.random.default_rng(0).uniform(0, 255, (1, *size)).astype(np.float32)
    times = {label: [] for label in runners}
    counts = {}
    for label, run in runners.items():  # warm-up: graph tracing, delegates
        run(image)
        started = time.perf_counter()
        run(image)
        # Up to `calls` a round, fewer for a slow model (about 0.5 s a round).
        counts[label] = max(1, min(calls, int(0.5 / (time.perf_counter() - started))))
    for _ in range(rounds):
        for label, run in runners.items():
            started = time.perf_counter()
            for _ in range(counts[label]):
                run(image)
            times[label].append((time.perf_counter() - started) / counts[label])
    return {label: statistics.median(values) for label, values in times.items()}


def file_sizes(run_dir, paths):
    from tfseg.deploy.export import file_size

    sizes = {KERAS: os.path.getsize(os.path.join(run_dir, "model.keras"))}
    sizes.update({label: file_size(path) for label, path in paths.items()})
    return sizes


def table(reports, sizes, latency):
    """The Markdown table: size, quality at the original resolution and its
    delta against Keras, batch-1 latency per thread count."""
    base = reports[KERAS]["original_resolution"]
    float_tflite = sizes["TFLite float32"]
    header = [
        "model",
        "file MiB",
        "x smaller than TFLite f32",
        "mean IoU",
        "delta (points)",
        "border IoU",
        "pixel acc",
        *(f"ms, {n} thread{'s' * (n > 1)}" for n in sorted(latency)),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for label, report in reports.items():
        scores = report["original_resolution"]
        cells = [
            label,
            f"{sizes[label] / 2**20:.2f}",
            f"{float_tflite / sizes[label]:.2f}",
            f"{scores['mean_iou']:.4f}",
            f"{100 * (scores['mean_iou'] - base['mean_iou']):+.2f}",
            f"{scores['iou'][BORDER]:.4f}",
            f"{scores['pixel_accuracy']:.4f}",
            *(f"{1000 * latency[n][label]:.2f}" for n in sorted(latency)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data-dir", help="the run's data, if moved")
    parser.add_argument("--out", default="runs/export_quality")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20, help="at most, a round")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    # Internal: one latency measurement, in a fresh process.
    parser.add_argument("--latency-of", metavar="PATHS_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.latency_of:
        paths = json.loads(args.latency_of)
        result = time_latency(
            args.run_dir, paths, args.threads[0], args.rounds, args.calls
        )
        print("LATENCY " + json.dumps(result))
        return
    os.makedirs(args.out, exist_ok=True)
    paths = export_all(args.run_dir, args.out, args.data_dir)
    reports = score_all(args.run_dir, paths, args.data_dir)
    latency = {}
    for threads in args.threads:
        command = [sys.executable, __file__, args.run_dir, "--latency-of"]
        command += [json.dumps(paths), "--threads", str(threads)]
        command += ["--rounds", str(args.rounds), "--calls", str(args.calls)]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True
        ).stdout
        line = next(x for x in output.splitlines() if x.startswith("LATENCY "))
        latency[threads] = json.loads(line[len("LATENCY ") :])
        print(f"latency with {threads} thread(s): measured")
    sizes = file_sizes(args.run_dir, paths)
    details = {
        "run": os.path.abspath(args.run_dir),
        "sizes": sizes,
        "reports": reports,
        "latency_seconds": latency,
        "rounds": args.rounds,
        "calls_per_round": args.calls,
    }
    with open(os.path.join(args.out, "export_quality.json"), "w") as file:
        json.dump(details, file, indent=2)
    print(table(reports, sizes, latency))


if __name__ == "__main__":
    main()
