"""Train a segmentation model on Oxford-IIIT Pet, evaluate it, write a report.

Recipes (each writes runs/<time>_<model>/; see the README for what is in it):

    # The best CPU recipe: MobileNetV2 U-Net, ImageNet encoder fine-tuned
    python train_pet.py --model mobilenet_unet --alpha 0.5 --epochs 40

    # Any model, any encoder, from a local copy of the official archive
    python train_pet.py --model fcn8s --data-dir ~/data/oxford_iiit_pet
    python train_pet.py --model unet --encoder resnet50 --loss ce+dice

    # Smoke run with no download: synthetic pets, 2 epochs
    python train_pet.py --model unet --synthetic 32 --epochs 2 --image-size 64

    # GPUs: mixed precision is automatic (bf16 on compute capability 8.0+)
    python train_pet.py --model unet --batch-size 64 --strategy mirrored

    # No TensorFlow (a GPU box on the JAX backend): splits exported elsewhere
    python -m tfseg export-data --data-dir DIR --image-size 128 --out pets.npz
    KERAS_BACKEND=jax python train_pet.py --model unet --data-npz pets.npz

    # Continue a run that was stopped (Ctrl-C, crash, kill)
    python train_pet.py --resume runs/20261126-081500_mobilenet_unet

Defaults live in `tfseg.training.TrainConfig`; the resolved configuration is
saved as config.json next to the checkpoints.
"""

import argparse
import json
import sys

from tfseg.training import PRECISIONS
from tfseg.training import STRATEGIES
from tfseg.training import TrainConfig


def parse_model_arg(item):
    """`"key=value"` -> `("key", value)`, the value read as JSON when it parses."""
    key, separator, value = item.partition("=")
    if not separator or not key:
        raise SystemExit(f"error: --model-arg expects KEY=VALUE; received {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_args(argv=None):
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Without --data-dir the data comes from TensorFlow Datasets.",
    )
    add = parser.add_argument
    add("--model", default=defaults.model, help="one of tfseg.list_models()")
    add(
        "--model-arg",
        dest="model_args",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra builder argument, e.g. base_filters=32 or batch_norm=true",
    )
    add(
        "--encoder", help="unet, vgg16, resnet50 or mobilenet_v2 (default: the model's)"
    )
    add("--alpha", type=float, help="MobileNetV2 width multiplier")
    add("--data-dir", help="local Oxford-IIIT Pet folder (official layout)")
    add(
        "--data-npz",
        metavar="FILE",
        help="splits from `python -m tfseg export-data --out FILE` "
        "(needs no TensorFlow: the JAX backend on a GPU box)",
    )
    add(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="train on N synthetic pets",
    )
    add("--image-size", type=int, default=defaults.image_size)
    add("--epochs", type=int, default=defaults.epochs)
    add("--batch-size", type=int, default=defaults.batch_size)
    add("--learning-rate", type=float, default=defaults.learning_rate)
    add("--warmup-epochs", type=float, default=defaults.warmup_epochs)
    add("--weight-decay", type=float, default=defaults.weight_decay)
    add("--loss", default=defaults.loss, choices=["ce", "dice", "ce+dice", "focal"])
    add("--class-weights", type=float, nargs="+", help="one weight per class")
    add("--precision", default=defaults.precision, choices=PRECISIONS)
    add("--strategy", default=defaults.strategy, choices=STRATEGIES)
    add(
        "--encoder-weights",
        default=defaults.encoder_weights,
        help="auto (ImageNet for pretrained encoders), imagenet, none or a .h5 path",
    )
    add("--freeze-encoder", action="store_true")
    add("--no-augment", dest="augment", action="store_false")
    add("--val-fraction", type=float, default=defaults.val_fraction)
    add("--max-examples", type=int, help="at most N examples per split")
    add("--binary", action="store_true", help="pet and border vs background")
    add("--skip-bad", action="store_true", help="skip broken files and report them")
    add("--cache-dir", help="keep decoded splits here as .npz")
    add("--early-stopping", type=int, default=0, metavar="PATIENCE")
    add("--time-budget", type=float, metavar="MIN", help="stop after MIN minutes")
    add("--seed", type=int, default=defaults.seed)
    add("--output-dir", default=defaults.output_dir)
    add("--run-name", help="run folder name (default: <time>_<model>)")
    add("--resume", metavar="RUN_DIR", help="continue a run from its last epoch")
    args = parser.parse_args(argv)
    args.model_args = dict(parse_model_arg(item) for item in args.model_args)
    if args.class_weights is not None:
        args.class_weights = tuple(args.class_weights)
    return TrainConfig(**vars(args))


def main(argv=None):
    config = parse_args(argv)
    from tfseg.training import train  # noqa: PLC0415 - imports Keras

    try:
        return train(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
