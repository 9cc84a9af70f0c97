"""Training throughput per model and precision, on any Keras backend.

    KERAS_BACKEND=jax python benchmarks/train_throughput.py \\
        --models unet,mobilenet_unet --precisions float32,mixed_bfloat16 \\
        --image-size 128 --batch-size 64 [--data pets128_train.npz] [--out DIR]

Needs no TensorFlow (the GPU machines have none): synthetic NumPy batches,
or an `.npz` written by `python -m tfseg export-data`. Every configuration
trains `--epochs` epochs of `--steps` steps in this one process; the first
epoch is mostly compilation and is reported apart; the others take turns
across configurations (one epoch each, round after round), and speed is the
median of a configuration's steady epochs (the best epoch is reported
too: on a shared machine with bursts of contention it is the steadier
figure). Achieved TFLOP/s counts a
training step as 3 forward passes (forward, and two matrix products per
layer backward) of 2 FLOPs per MAC.
`--tutorial` adds the TensorFlow tutorial's MobileNetV2 U-Net rebuilt
plainly (Keras MobileNetV2 cut at its five taps, pix2pix upsample blocks),
the reference the project's model must keep up with.

To find what bounds a configuration, vary one thing in the same run:
`--input-dtype uint8` sends a quarter of the bytes to the device (the
models cast inside), `--steps-per-execution N` hands N steps to the backend
per call (less Python between steps), `--batch-size` fills the matrix units.
"""

import argparse
import json
import os
import statistics
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfseg.config import DEFAULT_IMAGE_SIZE  # noqa: E402
from tfseg.models import count_macs  # noqa: E402
from tfseg.models import create_model  # noqa: E402

TUTORIAL_TAPS = [
    "block_1_expand_relu",
    "block_3_expand_relu",
    "block_6_expand_relu",
    "block_13_expand_relu",
    "block_16_project",
]


def tutorial_mobilenet_unet(image_size, num_classes=3):
    """The TensorFlow tutorial's model, rebuilt as the tutorial writes it."""
    base = keras.applications.MobileNetV2(
        input_shape=[image_size, image_size, 3], include_top=False, weights=None
    )
    down_stack = keras.Model(
        base.input, [base.get_layer(n).output for n in TUTORIAL_TAPS]
    )
    inputs = keras.Input([image_size, image_size, 3])
    skips = down_stack(inputs)
    x = skips[-1]
    for filters, skip in zip((512, 256, 128, 64), reversed(skips[:-1])):
        x = keras.layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", use_bias=False
        )(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Concatenate()([x, skip])
    outputs = keras.layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same")(x)
    return keras.Model(inputs, outputs, name="tutorial_mobilenet_unet")


def build(name, image_size):
    if name == "tutorial":
        return tutorial_mobilenet_unet(image_size)
    kwargs = {"input_shape": (image_size, image_size, 3)}
    if name in ("fcn32s", "fcn16s", "fcn8s", "mobilenet_unet"):
        kwargs["encoder_weights"] = None
    return create_model(name, **kwargs)


def batches(args):
    count = args.batch_size * args.steps
    if args.data:
        from tfseg.data.arrays import load_npz  # NumPy only

        examples = load_npz(args.data)
        if examples.images.shape[1] != args.image_size:
            raise SystemExit(
                f"{args.data} holds {examples.images.shape[1]} px images; pass "
                f"--image-size {examples.images.shape[1]}."
            )
        picks = np.arange(count) % len(examples)
        return examples.images[picks].astype(args.input_dtype), examples.masks[picks]
    rng = np.random.default_rng(0)
    size = args.image_size
    images = rng.uniform(0, 255, (count, size, size, 3)).astype(args.input_dtype)
    masks = rng.integers(0, 3, (count, size, size, 1)).astype(np.uint8)
    return images, masks


class Contender:
    """One model at one precision, built and compiled, timed epoch by epoch."""

    def __init__(self, name, precision, args):
        self.name, self.precision, self.args = name, precision, args
        keras.config.set_dtype_policy(precision)  # the layers keep it
        keras.utils.set_random_seed(0)
        self.model = build(name, args.image_size)
        self.model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=args.jit_compile,
            steps_per_execution=args.steps_per_execution,
        )
        keras.config.set_dtype_policy("float32")
        self.times = []

    def epoch(self, images, masks):
        start = time.perf_counter()
        self.model.fit(
            images,
            masks,
            batch_size=self.args.batch_size,
            epochs=1,
            verbose=0,
            shuffle=False,
        )
        self.times.append(time.perf_counter() - start)

    def result(self, count):
        rate = count / statistics.median(self.times[1:])
        macs = count_macs(self.model)
        return {
            "model": self.name,
            "precision": self.precision,
            "batch_size": self.args.batch_size,
            "input_dtype": self.args.input_dtype,
            "steps_per_execution": self.args.steps_per_execution,
            "images_per_s": rate,
            "best_images_per_s": count / min(self.times[1:]),
            "tflops": rate * 3 * 2 * macs / 1e12,
            "first_epoch_s": self.times[0],
            "epoch_s": self.times,
            "gmacs": macs / 1e9,
            "parameters": self.model.count_params(),
        }


def measure_all(names, precisions, images, masks, args):
    """Times every configuration; their steady epochs take turns.

    Each configuration first runs its compiling epoch; then round after
    round each runs one epoch, so a slow stretch of a shared machine falls
    on all of them alike rather than on whichever ran then.
    """
    contenders = []
    for name in names:
        for precision in precisions:
            contender = Contender(name, precision, args)
            contender.epoch(images, masks)
            print(
                f"{name} {precision}: first epoch {contender.times[0]:.1f} s",
                flush=True,
            )
            contenders.append(contender)
    for _ in range(args.epochs - 1):
        for contender in contenders:
            contender.epoch(images, masks)
    return [contender.result(len(images)) for contender in contenders]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="unet,mobilenet_unet")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", help=".npz from `python -m tfseg export-data`")
    parser.add_argument(
        "--input-dtype",
        default="float32",
        choices=["float32", "uint8"],
        help="dtype of the images fed to fit (uint8: 4x fewer bytes to move)",
    )
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument(
        "--tutorial",
        action="store_true",
        help="also time the tutorial's plainly rebuilt model",
    )
    parser.add_argument(
        "--jit-compile",
        default="auto",
        type=lambda v: v if v == "auto" else v == "true",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the card's measured bf16 matrix rate, for the %% column",
    )
    parser.add_argument("--out", help="folder for results.json")
    args = parser.parse_args(argv)
    names = args.models.split(",") + (["tutorial"] if args.tutorial else [])
    images, masks = batches(args)
    print(
        f"backend={keras.backend.backend()} keras={keras.__version__} "
        f"size={args.image_size} batch={args.batch_size} "
        f"data={args.data or 'synthetic'} inputs={args.input_dtype} "
        f"steps_per_execution={args.steps_per_execution}",
        flush=True,
    )
    results = measure_all(names, args.precisions.split(","), images, masks, args)
    if args.out:  # every epoch time is in results.json
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as file:
            json.dump(results, file, indent=2)
    print(
        "\n| model | precision | batch | images/s | best epoch images/s | "
        "vs float32 | TFLOP/s | % of peak | first epoch s |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    baseline = {
        r["model"]: r["images_per_s"] for r in results if r["precision"] == "float32"
    }
    for r in results:
        ratio = (
            r["images_per_s"] / baseline[r["model"]]
            if r["model"] in baseline
            else float("nan")
        )
        peak = (
            f"{100 * r['tflops'] / args.peak_tflops:.0f}%" if args.peak_tflops else "-"
        )
        print(
            f"| {r['model']} | {r['precision']} | {r['batch_size']} | "
            f"{r['images_per_s']:,.1f} | {r['best_images_per_s']:,.1f} | "
            f"{ratio:.2f}x | {r['tflops']:.3f} | {peak} | "
            f"{r['first_epoch_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
