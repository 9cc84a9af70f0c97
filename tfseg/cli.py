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
        path = args.out if len(splits) == 1 else _split_path(args.out, split)
        export_npz(examples, path)
        print(f"{split}: {len(examples)} examples -> {path}")
        for name, problem in sorted(examples.skipped.items()):
            print(f"  skipped {name}: {problem}")


def _split_path(path, split):
    stem, extension = os.path.splitext(path)
    return f"{stem}_{split}{extension or '.npz'}"


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
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "verify-data":
            return 1 if verify_data(args.directory) else 0
        export_data(args)
        return 0
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
