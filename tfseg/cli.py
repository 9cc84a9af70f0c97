"""`python -m tfseg COMMAND`: data checks and export.

python -m tfseg verify-data DIR
python -m tfseg export-data --data-dir DIR --split train --image-size 128 --out FILE
"""

import argparse
import os
import sys


def verify_data(directory, out=None):
    """Checks every image/trimap pair and split-list entry of a folder.

    Prints a report naming each broken file and its problem.

    Returns:
        The number of problems found (0: the folder is fine).
    """
    from tfseg.data import OxfordPetFolder  # noqa: PLC0415
    from tfseg.data.pipeline import inspect_pair  # noqa: PLC0415 - TensorFlow

    out = out or sys.stdout
    folder = OxfordPetFolder(directory)
    problems = {}
    images = folder.stems(folder.images_dir, ".jpg")
    trimaps = folder.stems(folder.trimaps_dir, ".png")
    for name in sorted(images - trimaps):
        problems[name] = f"image has no trimap {folder.trimap_path(name)!r}"
    for name in sorted(trimaps - images):
        problems[name] = f"trimap has no image {folder.image_path(name)!r}"
    for split in ("trainval", "test"):
        try:
            entries = folder.read_list(split)
        except ValueError as error:
            problems[f"annotations/{split}.txt"] = str(error)
            continue
        if entries is None:
            print(f"note: annotations/{split}.txt is absent", file=out)
            continue
        _, missing = folder.records(entries)  # {name: what is missing}
        for name, problem in missing.items():
            problems[name] = f"listed in {split}.txt but {problem}"
    pairs = folder.paired_names()
    for index, name in enumerate(pairs, 1):
        problem = inspect_pair(folder.image_path(name), folder.trimap_path(name))
        if problem:
            problems[name] = problem
        if index % 500 == 0:
            print(f"checked {index}/{len(pairs)} pairs", file=out)
    for name, problem in sorted(problems.items()):
        print(f"BROKEN {name}: {problem}", file=out)
    print(
        f"{len(pairs)} image/trimap pairs checked in {folder.root}: "
        f"{len(problems)} problem(s).",
        file=out,
    )
    return len(problems)


def export_data(args):
    from tfseg.data import export_npz  # noqa: PLC0415
    from tfseg.data import load_oxford_pet  # noqa: PLC0415 - TensorFlow
    from tfseg.data.arrays import split_path  # noqa: PLC0415

    splits = load_oxford_pet(
        args.data_dir,
        args.image_size,
        splits=args.split,
        val_fraction=args.val_fraction,
        seed=args.seed,
        binary=args.binary,
        resize_mode=args.resize_mode,
        max_examples=args.max_examples,
        skip_bad=args.skip_bad,
    )
    for split, examples in splits.items():
        path = args.out if len(splits) == 1 else split_path(args.out, split)
        export_npz(examples, path)
        print(f"{split}: {len(examples)} examples -> {path}")
        for name, problem in sorted(examples.skipped.items()):
            print(f"  skipped {name}: {problem}")


def load_run(run_dir):
    """The configuration and trained model of a run folder."""
    import keras  # noqa: PLC0415

    from tfseg import training  # noqa: PLC0415

    saved = training.read_json(os.path.join(run_dir, "config.json"))
    model_path = os.path.join(run_dir, "model.keras")
    if saved is None or not os.path.isfile(model_path):
        raise ValueError(
            f"{run_dir!r} is not a finished run folder: it needs config.json and "
            "model.keras (written when train_pet.py finishes; resume an "
            "unfinished run with --resume)."
        )
    config = training.TrainConfig(**saved["config"])
    return config, keras.models.load_model(model_path)


def evaluate_run(args):
    from tfseg import evaluate  # noqa: PLC0415
    from tfseg import training  # noqa: PLC0415

    config, model = load_run(args.run_dir)
    if args.data_dir:
        config.data_dir, config.synthetic = args.data_dir, 0
    splits = training.load_data(config, args.run_dir)
    report = evaluate.evaluate_model(model, splits["test"], config.batch_size)
    evaluate.write_report(report, args.run_dir)
    print(evaluate.format_report(report))


def predict_images(args):
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    from tfseg import visualize  # noqa: PLC0415

    _, model = load_run(args.run_dir)
    height, width = model.input_shape[1:3]
    os.makedirs(args.out, exist_ok=True)
    for path in args.images:
        try:
            image = Image.open(path).convert("RGB")
        except (OSError, ValueError) as error:
            raise ValueError(f"Cannot read image {path!r}: {error}") from error
        original = np.asarray(image)
        # As the pipeline resizes: area averaging to shrink, bilinear to grow.
        shrinking = image.width >= width and image.height >= height
        method = Image.BOX if shrinking else Image.BILINEAR
        resized = np.asarray(image.resize((width, height), method), np.float32)
        logits = model(resized[None], training=False)
        logits = keras.ops.image.resize(
            logits, original.shape[:2], interpolation="bilinear"
        )
        mask = keras.ops.convert_to_numpy(logits)[0].argmax(-1).astype(np.uint8)
        stem = os.path.join(args.out, os.path.splitext(os.path.basename(path))[0])
        Image.fromarray(mask).save(f"{stem}_mask.png")
        Image.fromarray(visualize.overlay(original, mask)).save(f"{stem}_overlay.png")
        print(f"{path} -> {stem}_mask.png (class ids), {stem}_overlay.png")


# --format: (Keras's `model.export` format, default name in the run folder)
EXPORT_FORMATS = {
    "savedmodel": ("tf_saved_model", "savedmodel"),
    "tflite": ("litert", "model.tflite"),
    "onnx": ("onnx", "model.onnx"),
}


def export_model(args):
    """Writes the run's model as a SavedModel, a TFLite (LiteRT) file or ONNX.

    All three go through Keras's `model.export`; the tests run each exported
    file and compare its logits with the Keras model's.
    """
    import numpy as np  # noqa: PLC0415

    _, model = load_run(args.run_dir)
    keras_format, default_name = EXPORT_FORMATS[args.format]
    out = args.out or os.path.join(args.run_dir, default_name)
    # Keras traces the ONNX graph from a model that has run once; a model
    # fresh from load_model has not.
    model(np.zeros((1, *model.input_shape[1:]), np.float32))
    try:
        model.export(out, format=keras_format, verbose=False)
    except ImportError as error:
        raise ValueError(
            f"{args.format} export needs extra packages ({error}); install "
            "them with `python3 -m pip install onnx tf2onnx` (the project's "
            "`export` extra) on the TensorFlow backend and retry."
        ) from error
    print(f"exported {args.format} to {out}")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tfseg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify-data", help="check a dataset folder and name every broken file"
    )
    verify.add_argument("directory", help="folder in the official archive layout")
    export = commands.add_parser(
        "export-data", help="write preprocessed splits to .npz (for any backend)"
    )
    export.add_argument("--data-dir", help="dataset folder; default: TFDS")
    export.add_argument(
        "--split",
        nargs="+",
        default=["train", "val", "test"],
        choices=["train", "val", "test"],
    )
    export.add_argument("--image-size", type=int, default=128)
    export.add_argument("--val-fraction", type=float, default=0.1)
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--binary", action="store_true")
    export.add_argument(
        "--resize-mode", default="stretch", choices=["stretch", "crop", "pad"]
    )
    export.add_argument("--max-examples", type=int)
    export.add_argument("--skip-bad", action="store_true")
    export.add_argument(
        "--out", required=True, help="output .npz (one per split: FILE_SPLIT.npz)"
    )
    evaluate = commands.add_parser(
        "evaluate", help="score a run's model on the test split"
    )
    evaluate.add_argument("run_dir")
    evaluate.add_argument(
        "--data-dir", help="score on this folder's test split instead"
    )
    predict = commands.add_parser("predict", help="segment your own images")
    predict.add_argument("run_dir")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--out", required=True, help="folder for masks and overlays")
    export_parser = commands.add_parser("export", help="export a run's model")
    export_parser.add_argument("run_dir")
    export_parser.add_argument("--format", required=True, choices=list(EXPORT_FORMATS))
    export_parser.add_argument("--out", help="output path (default: in the run folder)")
    from tfseg import compare  # noqa: PLC0415 - Keras only when used

    compare.add_arguments(
        commands.add_parser("compare", help="train and compare several models")
    )
    return parser


def compare_models(args):
    from tfseg import compare  # noqa: PLC0415

    compare.compare(args)


COMMANDS = {
    "compare": compare_models,
    "export-data": export_data,
    "evaluate": evaluate_run,
    "predict": predict_images,
    "export": export_model,
}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "verify-data":
            return 1 if verify_data(args.directory) else 0
        COMMANDS[args.command](args)
        return 0
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
