"""`tfseg verify-data DIR`: check a dataset folder and name every broken file.

Two reports, by the folder's layout (`verify_data` picks):

- Oxford-IIIT Pet (`verify_folder`): images without a trimap and trimaps
  without an image, split-list lines that are malformed or name missing
  files, and each image/trimap pair through the pipeline's own decoders and
  checks (`decoding.inspect_pair`).
- any other folder (`verify_described_folder`, no TensorFlow): the layout
  found (`folders.find_layout`) and its splits (`described.assign_splits`),
  the description training would use (`described.folder_description`)
  with each class's share of the training pixels, then every broken file:
  unpaired files, JPEG masks, masks of another size than their image,
  values or colours the description does not declare (with their pixels),
  colour masks without `colors`, images that cannot be read.
  `--write-dataset` writes the description as a starting `dataset.json`.
"""

import os
import sys

from PIL import Image

from tfseg.config import TrainConfig
from tfseg.data.dataset import DATASET_JSON
from tfseg.data.dataset import write_dataset_json
from tfseg.data.described import assign_splits
from tfseg.data.described import folder_description
from tfseg.data.described import is_pet_folder
from tfseg.data.folders import find_layout
from tfseg.data.folders import inspect_masks
from tfseg.data.layout import SPLIT_LISTS
from tfseg.data.layout import OxfordPetFolder
from tfseg.progress import Progress

LAYOUT_WORDS = {
    "split_folders": "split folders (train/, val/, test/, each images + masks)",
    "segnet": "SegNet's (train/ + trainannot/, val/ + valannot/, ...)",
    "single_folder": "one images folder and one masks folder, no splits",
    "explicit": 'dataset.json\'s "splits"',
}
CHUNK = 32  # pairs checked between two progress steps


def verify_data(directory, dataset=None, write_dataset=None, out=None):
    """Checks a dataset folder of any layout `--data-dir` takes.

    Args:
        directory: the dataset folder.
        dataset: a `dataset.json` describing it (`--dataset FILE`).
            Defaults to `None` (its own `dataset.json`, else its masks).
        write_dataset: write the description found: `True` to
            `DIR/dataset.json`, or a path. Defaults to `None` (write nothing).
        out: a text stream. Defaults to standard output.

    Returns:
        The number of problems found (0: the folder is fine).

    Raises:
        ValueError: for a folder in no known layout, a `dataset.json` that
            cannot be read, `--write-dataset` onto an existing file, or
            either flag on an Oxford-IIIT Pet folder.
    """
    if is_pet_folder(os.fspath(directory)):
        for flag, given in (("--dataset", dataset), ("--write-dataset", write_dataset)):
            if given:
                raise ValueError(
                    f"{flag}: {os.fspath(directory)!r} is in Oxford-IIIT Pet's "
                    "layout, whose classes are known (pet, background, border) "
                    f"without a {DATASET_JSON}; drop {flag}."
                )
        return verify_folder(directory, out)
    return verify_described_folder(directory, dataset, write_dataset, out)


def verify_folder(directory, out=None):
    """Checks every image/trimap pair and split-list entry of a folder.

    Prints a report to `out`: one `BROKEN NAME: problem` line per problem,
    then a summary line; progress on the pair checks goes there too.

    Args:
        directory: a folder in the official archive layout (see
            `OxfordPetFolder`).
        out: a text stream. Defaults to standard output.

    Returns:
        The number of problems found (0: the folder is fine).

    Raises:
        ValueError: if `directory` is not such a folder.

    Example:

    >>> verify_folder("data/oxford_iiit_pet")  # doctest: +SKIP
    521 image/trimap pairs checked in data/oxford_iiit_pet: 0 problem(s).
    0
    """
    from tfseg.data.decoding import inspect_pair  # TensorFlow decoders

    out = out or sys.stdout
    folder = OxfordPetFolder(directory)
    problems = {}
    images = folder.stems(folder.images_dir, ".jpg")
    trimaps = folder.stems(folder.trimaps_dir, ".png")
    for name in sorted(images - trimaps):
        problems[name] = f"image has no trimap {folder.trimap_path(name)!r}"
    for name in sorted(trimaps - images):
        missing = folder.is_missing("image", folder.image_path(name))
        problems[name] = f"trimap has no image: {missing}"
    for split, file_name in SPLIT_LISTS.items():
        try:
            entries = folder.read_list(split)
        except ValueError as error:
            problems[f"annotations/{file_name}"] = str(error)
            continue
        if entries is None:
            print(f"note: annotations/{file_name} is absent", file=out)
            continue
        _, missing = folder.records(entries)  # {name: what is missing}
        for name, problem in missing.items():
            problems[name] = f"listed in {file_name} but {problem}"
    pairs = folder.paired_names()
    progress = Progress(len(pairs), "checking pairs", stream=out)
    for name in pairs:
        problem = inspect_pair(folder.image_path(name), folder.trimap_path(name))
        if problem:
            problems[name] = problem
        progress.advance()
    progress.done()
    for name, problem in sorted(problems.items()):
        print(f"BROKEN {name}: {problem}", file=out)
    print(
        f"{len(pairs)} image/trimap pairs checked in {folder.root}: "
        f"{len(problems)} problem(s).",
        file=out,
    )
    return len(problems)


def verify_described_folder(root, dataset=None, write_dataset=None, out=None):
    """Checks a folder other than the pets': what training would find in it.

    Prints to `out`: the layout and its notes, the splits with their pair
    counts, the description (each class's mask value, colour and share of
    the training pixels; the void values; where it came from), one `BROKEN
    FILE: problem` line per problem, and a summary line.

    Args:
        root, dataset, write_dataset, out: as in `verify_data`.

    Returns:
        The number of problems found.

    Raises:
        ValueError: as `verify_data` says; the file is refused before any
            mask is read.

    Example:

    >>> verify_described_folder("data/camvid", "camvid.json")  # doctest: +SKIP
    468 image/mask pairs checked in data/camvid: 0 problem(s).
    0
    """
    out = out or sys.stdout
    root = os.fspath(root)
    target = dataset_target(root, write_dataset)
    own = dataset or os.path.join(root, DATASET_JSON)
    described = bool(dataset) or os.path.isfile(own)
    description = folder_description(root, dataset) if described else None
    layout = find_layout(root, description and description.splits, skip_bad=True)
    problems = dict(layout.problems)  # named relative to `root` already
    if not described:
        try:
            description = folder_description(root, skip_bad=True, report=_silent)
        except ValueError as error:
            problems["(classes)"] = str(error)
    print(f"layout: {LAYOUT_WORDS[layout.kind]} in {root}", file=out)
    for note in layout.notes:
        print(f"  {note}", file=out)
    try:
        defaults = TrainConfig.val_fraction, TrainConfig.seed
        splits, notes = assign_splits(layout, *defaults)
    except ValueError as error:
        problems["(splits)"] = str(error)
        splits, notes = layout.splits, []
    counts = ", ".join(f"{split} {len(pairs)}" for split, pairs in splits.items())
    print(f"splits: {counts or 'none'}", file=out)
    for note in notes:
        print(f"  {note}", file=out)
    pairs = list({pair: None for split in layout.splits.values() for pair in split})
    files = check_pairs(root, pairs, description, problems, out)
    if description is not None:
        source = (
            f"from --dataset {dataset}"
            if dataset
            else f"from {own}"
            if described
            else f"found in the masks ({root} has no {DATASET_JSON}; to name "
            "them, write one with --write-dataset and edit it)"
        )
        train = [pair.mask_path for pair in splits.get("train", [])]
        print_description(description, source, files, train, out)
    for name, problem in sorted(problems.items()):
        print(f"BROKEN {name}: {problem}", file=out)
    print(
        f"{len(pairs)} image/mask pairs checked in {root}: {len(problems)} problem(s).",
        file=out,
    )
    if problems:
        print(
            "Fix or remove these files; `tfseg train --skip-bad` leaves the broken "
            "examples out and lists them.",
            file=out,
        )
    if target and description is not None:
        write_dataset_json(target, description)
        print(
            f"wrote {target}: the description above, to edit"
            + ("" if described else " (name the classes, check `ignore`)"),
            file=out,
        )
    elif target:
        print(f"nothing written to {target}: no classes were found", file=out)
    return len(problems)


def dataset_target(root, write_dataset):
    """The file `--write-dataset` writes (`None`: none), refused where it
    exists already, is a folder, or lies in a folder that does not exist."""
    if not write_dataset:
        return None
    default = write_dataset is True
    path = os.path.join(root, DATASET_JSON) if default else os.fspath(write_dataset)
    flag = "--write-dataset" + ("" if default else f" {path}")
    if os.path.isdir(path):
        raise ValueError(
            f"{flag} is a folder: pass the file to write, e.g. "
            f"--write-dataset {os.path.join(path, DATASET_JSON)}."
        )
    if os.path.exists(path):
        raise ValueError(
            f"{flag}: {path} exists already, and is never overwritten. Edit it, "
            "remove it first, or write another file with --write-dataset FILE."
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{flag}: the folder {parent} does not exist.")
    return path


def check_pairs(root, pairs, description, problems, out):
    """Reads every mask of `pairs` against `description` (`None`: values
    only) and checks each image can be read; adds `{file: problem}` to
    `problems`. Returns `{mask_path: {value: pixels}}` (`MaskInspection.files`)."""
    progress = Progress(len(pairs), "checking pairs", stream=out)
    files = {}
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start : start + CHUNK]
        inspection = inspect_masks(chunk, description)
        files.update(inspection.files)
        for path, problem in inspection.problems.items():
            problems[_shown(root, path)] = problem
        for pair in chunk:
            mask_problem = inspection.problems.get(pair.mask_path, "")
            problem = None if "image cannot" in mask_problem else image_problem(pair)
            if problem:
                problems[_shown(root, pair.image_path)] = problem
        progress.advance(len(chunk))
    progress.done()
    return files


def image_problem(pair):
    """Why the image of `pair` cannot be read, or `None`. A JPEG is decoded
    at 1/8 scale (fast); other formats are checked by their checksums."""
    try:
        with Image.open(pair.image_path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (image.width // 8 or 1, image.height // 8 or 1))
                image.load()
            else:
                image.verify()
    except Exception as error:  # PIL raises OSError, SyntaxError, struct.error...
        return f"the image cannot be read: {error}"
    return None


def print_description(description, source, files, train_masks, out):
    """The classes with their value, colour and share of the training
    pixels, the void values, and where the description came from."""
    rgb = description.masks == "rgb"
    totals = {}
    for path in train_masks:
        for value, pixels in files.get(path, {}).items():
            totals[value] = totals.get(value, 0) + pixels
    everything = sum(totals.values()) or 1

    def share(values):
        pixels = sum(totals.get(value, 0) for value in values)
        return f"{100 * pixels / everything:.1f}%" if train_masks else "-"

    kind = "colour" if rgb else "id"
    print(f"classes: {description.num_classes}, {kind} masks, {source}", file=out)
    values = description.colors if rgb else description.mask_values
    colors = description.colors if description.colors and not rgb else None
    rows = [["id", "name", "colour" if rgb else "value"]]
    rows[0] += ["colour"] * bool(colors) + ["training pixels"]
    for index, (name, value) in enumerate(zip(description.classes, values)):
        row = [str(index), name, _value(value)]
        row += [_value(colors[index])] if colors else []
        rows.append(row + [share([value])])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:  # numbers to the right, words to the left
        cells = [
            cell.rjust(width) if column in (0, len(row) - 1) else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ]
        print("  " + "  ".join(cells).rstrip(), file=out)
    void = ", ".join(map(_value, description.ignore)) or "none"
    if description.ignore:
        void += f" ({share(description.ignore)} of training pixels)"
    print(f"  void: {void}", file=out)
    declared = description.declared_values()
    undeclared = sorted(
        (value for value in totals if value not in declared), key=totals.get
    )[::-1]
    if undeclared:
        shown = ", ".join(map(_value, undeclared[:5])) + ", ..." * (len(undeclared) > 5)
        print(
            f"  undeclared: {shown} ({share(undeclared)} of training pixels)", file=out
        )
    absent = [
        name
        for name, value in zip(description.classes, values)
        if train_masks and not totals.get(value)
    ]
    if absent and len(absent) < description.num_classes:  # else: broken masks
        them = "it" if len(absent) == 1 else "them"
        print(
            f"  warning: no training mask holds {', '.join(map(repr, absent))}: the "
            f"model cannot learn {them}; move images with {them} into the "
            "training split",
            file=out,
        )


def _value(value):
    """`7`, or `128,64,128` for a colour; `-` for none."""
    if value is None:
        return "-"
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _shown(root, path):
    """A file's path relative to `root` where it lies inside it (as the
    layout's problems name files), else as it is."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return path if relative.startswith("..") else relative.replace(os.sep, "/")


def _silent(_):
    """A `report` that says nothing: the report names the source itself."""
