"""A run's dataset description, and the splits of a described folder.

Pure Python, NumPy and PIL (no TensorFlow). Oxford-IIIT Pet (its folder,
TFDS, `--synthetic`) needs no description: its classes are
`config.PET_CLASS_NAMES`. Any other folder is described, in this order, by:

1. `--dataset FILE`;
2. `DIR/dataset.json`;
3. the description of the run being scored (`evaluate RUN --data-dir DIR`),
   so a folder without a file is read with the run's classes and void;
4. the values found in its masks (`describe_from_masks`): each value a
   class `class_<value>`, said on the console and recorded in
   `config.json`.

Exports (`export-data`) keep the description beside them as
`<stem>_dataset.json`.

A folder's splits (`assign_splits`): its own; `val` carved from `train`
with the seed where there is none; the test split is `val` where there is no
test split (CamVid's test frames are often held back); a folder without
splits is divided with the seed, `TEST_FRACTION` to test.
"""

import dataclasses
import os

from tfseg.data.dataset import DATASET_JSON
from tfseg.data.dataset import DatasetDescription
from tfseg.data.dataset import describe_from_masks
from tfseg.data.dataset import read_dataset_json
from tfseg.data.folders import ALL
from tfseg.data.folders import find_layout
from tfseg.data.folders import inspect_masks
from tfseg.data.layout import stratified_split

# Share of a folder without splits that becomes the test split.
TEST_FRACTION = 0.2
# Masks read to find the classes of a folder without a description (spread
# over the folder); the pipeline checks every mask against the result.
DISCOVERY_MASKS = 1000


def is_pet_folder(root):
    """Whether `root` is in Oxford-IIIT Pet's layout (its trimaps folder)."""
    return os.path.isdir(os.path.join(root, "annotations", "trimaps"))


def description_path(data_npz):
    """Where `export-data --out PATH` keeps the description: `<stem>_dataset.json`."""
    return os.path.splitext(os.fspath(data_npz))[0] + "_dataset.json"


def describe_data(config, fallback=None, report=print):
    """`config` with `description` set from its data, where it needs one.

    Args:
        config: a `TrainConfig`.
        fallback: a `DatasetDescription` (or its dict) to read a folder with
            when it has no `dataset.json` and no `--dataset` was given: the
            scored run's. Defaults to `None` (describe from the masks).
        report: where a sentence on how the classes were found goes.
            Defaults to `print`.

    Returns:
        A `TrainConfig`: `config` itself for the pets.

    Raises:
        ValueError: for a `dataset.json` that cannot be read (its line and
            column, or its field), `--dataset` on a pets folder, or masks
            whose values cannot be classes.
    """
    description = None
    if config.data_npz:
        path = description_path(config.data_npz)
        description = read_dataset_json(path) if os.path.isfile(path) else None
    elif config.data_dir and not config.synthetic:
        description = folder_description(
            config.data_dir, config.dataset, fallback, config.skip_bad, report
        )
    if description is None:
        config.check_class_weights()
        return config
    described = dataclasses.replace(config, description=description.to_dict())
    described.check_class_weights()
    return described


def folder_description(root, dataset=None, fallback=None, skip_bad=False, report=print):
    """The `DatasetDescription` of a folder (see the module's order), or
    `None` for an Oxford-IIIT Pet folder."""
    root = os.fspath(root)
    if is_pet_folder(root):
        if dataset:
            raise ValueError(
                f"--dataset {dataset}: {root!r} is in Oxford-IIIT Pet's layout, "
                "whose classes are known (pet, background, border); drop --dataset."
            )
        return None
    path = dataset or os.path.join(root, DATASET_JSON)
    if dataset and not os.path.isfile(dataset):
        state = "is a folder" if os.path.isdir(dataset) else "does not exist"
        raise ValueError(f"--dataset {dataset!r} {state}: pass a dataset.json file.")
    if os.path.isfile(path):
        return read_dataset_json(path)
    if fallback is not None:
        if not isinstance(fallback, DatasetDescription):
            fallback = DatasetDescription.from_dict(fallback)
        report(
            f"{root} has no {DATASET_JSON}: reading it with the run's "
            f"{fallback.num_classes} classes ({', '.join(fallback.classes)})"
            + (f" and void {list(fallback.ignore)}" if fallback.ignore else "")
        )
        return fallback
    layout = find_layout(root, skip_bad=True)
    pairs = [pair for split in layout.splits.values() for pair in split]
    found = inspect_masks(pairs, max_files=DISCOVERY_MASKS)
    if not found.values:
        raise ValueError(
            f"{root!r}: no mask could be read to find its classes"
            + (f" ({next(iter(found.problems.values()))})" if found.problems else "")
            + f". Give them in {path}."
        )
    check_one_kind(root, found.files, path)
    description = describe_from_masks(found.values, found.palette)
    values = sorted(found.values)
    shown = ", ".join(map(str, values[:12])) + (", ..." if len(values) > 12 else "")
    void = f", void {list(description.ignore)}" if description.ignore else ""
    report(
        f"{root} has no {DATASET_JSON}: its masks hold the values {shown}, taken "
        f"as {description.num_classes} classes ({', '.join(description.classes[:6])}"
        f"{', ...' if description.num_classes > 6 else ''}{void}). Name them "
        f"with `tfseg verify-data {root} --write-dataset` and edit the file."
    )
    return description


def check_one_kind(root, files, path):
    """Raises `ValueError` naming a colour mask and a single-value one when
    `files` (`{mask: {value: pixels}}`) holds both kinds."""
    colour = [mask for mask, counts in files.items() if _colours(counts)]
    single = [mask for mask, counts in files.items() if not _colours(counts)]
    if colour and single:
        raise ValueError(
            f"{root!r}: {len(colour)} of its {len(files)} masks are colour (RGB) "
            f"images, e.g. {colour[0]}, the others single-channel, e.g. "
            f"{single[0]}. Save them all one way, or describe them in {path} "
            '("masks": "rgb" with "colors" reads every mask as colours).'
        )


def _colours(counts):
    return any(isinstance(value, tuple) for value in counts)


def assign_splits(layout, val_fraction=0.1, seed=0, wanted=("train", "val", "test")):
    """`({split: [Pair]}, notes)`: the wanted splits of a found layout.

    Args:
        layout: a `FolderLayout` (`find_layout`), not the pets'.
        val_fraction: share of train held out as `val` where the folder has
            no validation split (and of the rest, for a folder without
            splits). Defaults to `0.1`.
        seed: seed of every carved split. Defaults to `0`.
        wanted: the splits asked for. Defaults to all.

    Returns:
        The pairs of each wanted split (`[]` for a split there is none of),
        and a sentence per split that was carved or borrowed.

    Raises:
        ValueError: when a wanted split can be had neither from the folder
            nor by carving, saying what the folder holds.
    """
    found = dict(layout.splits)
    notes = []
    if ALL in found:
        everything = found.pop(ALL)
        rest, found["test"] = _carve(everything, TEST_FRACTION, seed)
        found["train"], found["val"] = _carve(rest, val_fraction, seed)
        notes.append(
            f"no splits in {layout.root}: {len(found['train'])} train, "
            f"{len(found['val'])} val, {len(found['test'])} test (seed {seed})"
        )
    elif "val" not in found and "train" in found and val_fraction > 0:
        found["train"], found["val"] = _carve(found["train"], val_fraction, seed)
        notes.append(
            f"no val split: {len(found['val'])} of the training images held out "
            f"(--val-fraction {val_fraction}, seed {seed})"
        )
    if "test" not in found and found.get("val") and "test" in wanted:
        found["test"] = found["val"]
        notes.append("no test split: the test report scores the val split")
    missing = [split for split in wanted if split != "val" and not found.get(split)]
    if missing:
        held = ", ".join(f"{s} ({len(p)})" for s, p in found.items() if p) or "none"
        raise ValueError(
            f"{layout.root!r} has no {' or '.join(missing)} split (it has: {held}). "
            'Add the folder, or list the split in dataset.json\'s "splits".'
        )
    return {split: found.get(split, []) for split in wanted}, notes


def _carve(pairs, fraction, seed):
    """`(rest, held_out)` of pairs, `fraction` held out with `seed`."""
    items = [(pair.name, -1, -1) for pair in pairs]
    _, held = stratified_split(items, fraction, seed)
    held = {item[0] for item in held}
    rest = [pair for pair in pairs if pair.name not in held]
    return rest, [pair for pair in pairs if pair.name in held]
