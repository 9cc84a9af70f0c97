"""A dataset folder's (image, mask) pairs per split, and what its masks hold.

Pure Python, NumPy and PIL (no TensorFlow). `find_layout` recognises, in
this order::

    ROOT/images/ + ROOT/annotations/trimaps/     Oxford-IIIT Pet ("oxford_pet")
    ROOT/train/images/ + ROOT/train/masks/, val/, test/      ("split_folders")
    ROOT/train/ + ROOT/trainannot/, val/ + valannot/, ...    ("segnet")
        with optional lists ROOT/train.txt, val.txt, test.txt
    ROOT/images/ + ROOT/masks/, no split: split later        ("single_folder")

Folder names match whatever their case, in the pairs of `FOLDER_PAIRS`;
files pair by stem, as `PAIRING_HINT` says.
"""

import collections
import dataclasses
import os

import numpy as np
from PIL import Image

from tfseg.config import SPLITS
from tfseg.data.dataset import DataError
from tfseg.data.dataset import pack_colors
from tfseg.data.dataset import undeclared_problem
from tfseg.data.dataset import unpack_color
from tfseg.data.layout import check_folder

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
JPEG_EXTENSIONS = (".jpg", ".jpeg")  # refused as masks
FOLDER_PAIRS = (
    ("images", "masks"), ("image", "label"), ("img", "ann"), ("images", "annotations")
)  # fmt: skip
MASK_SUFFIXES = ("_mask", "_label", "_labels", "_gt")
ALL = "all"  # the one split of a folder without splits
PAIRING_HINT = (
    "An image pairs with the mask of its file stem (0001.jpg with 0001.png) or "
    f"of its stem and one of {', '.join(MASK_SUFFIXES)} (0001_mask.png)."
)
JPEG_MASK = (
    "a JPEG mask, refused: JPEG is lossy, so class values smear into values of "
    "no class at every edge; save the masks as PNG"
)


@dataclasses.dataclass(frozen=True)
class Pair:
    """One image and its mask.

    Attributes:
        image_path: path of the image file.
        mask_path: path of the mask file.
        name: the image's file stem, e.g. `"0001TP_006690"`.
    """

    image_path: str
    mask_path: str
    name: str


@dataclasses.dataclass(frozen=True)
class FolderLayout:
    """What `find_layout` found in a dataset folder.

    Attributes:
        kind: `"oxford_pet"` (for `OxfordPetFolder`; no `splits`),
            `"split_folders"`, `"segnet"`, `"single_folder"` (one split,
            `"all"`, to divide with a seed) or `"explicit"` (dataset.json's).
        root: the dataset folder.
        splits: `{split: [Pair, ...]}`, the pairs sorted by name.
        notes: sentences for the user, e.g. `"paired 367 images in train/
            with trainannot/ (listed in train.txt)"`.
        problems: `{file: problem}` of the files left out (`skip_bad`).
    """

    kind: str
    root: str
    splits: dict
    notes: tuple = ()
    problems: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class MaskInspection:
    """What `inspect_masks` found in the masks.

    Attributes:
        values: `{value: pixels}` over every mask read, sorted: ints, or
            `(r, g, b)` tuples for colour masks.
        files: `{mask_path: {value: pixels}}`.
        problems: `{mask_path: problem}`: undeclared values, a size other
            than the image's, colour masks without `colors`.
        palette: the first palette PNG's palette, flat, or `None`.
    """

    values: dict
    files: dict
    problems: dict
    palette: list | None = None


def find_layout(root, splits=None, skip_bad=False):
    """Finds the (image, mask) pairs of each split of a dataset folder.

    Args:
        root: the dataset folder.
        splits: the `splits` of its `DatasetDescription`, `{split: list
            file}` (lines `IMAGE_PATH MASK_PATH`) or `{split: {"images":
            folder, "masks": folder}}`, relative to `root`. Defaults to
            `None` (the layout decides).
        skip_bad: leave unpaired and refused files out, recorded in
            `problems`, instead of raising. Defaults to `False`.

    Returns:
        A `FolderLayout`.

    Raises:
        ValueError: if `root` holds none of the layouts.
        DataError: naming every image without a mask, mask without an image,
            JPEG mask and listed file that is not there (unless `skip_bad`).

    Example:

    >>> layout = find_layout("data/camvid")  # doctest: +SKIP
    >>> layout.kind, len(layout.splits["train"])  # doctest: +SKIP
    ('segnet', 367)
    """
    root = os.fspath(root)
    if root.endswith(".npz") and os.path.isfile(root):
        check_folder(root)  # named as an export, read by --data-npz
    if not os.path.isdir(root):
        state = "is a file" if os.path.exists(root) else "does not exist"
        raise ValueError(f"The data folder {root!r} {state}: pass a folder.")
    if splits is not None:
        kind, sources = "explicit", _explicit_sources(root, splits)
    elif os.path.isdir(os.path.join(root, "annotations", "trimaps")):
        note = "Oxford-IIIT Pet layout (images/, annotations/trimaps/)"
        return FolderLayout("oxford_pet", root, {}, (note,))
    else:
        kind, sources = _detect(root)
    found, notes, problems = {}, [], {}
    for split, (images_dir, masks_dir, list_path) in sources.items():
        folders = (root, images_dir, masks_dir)
        pairs, split_problems, split_notes = (
            _pair_list(*folders, list_path) if list_path else _pair_folders(*folders)
        )
        found[split] = sorted(pairs, key=lambda pair: pair.name)
        listed = f" (listed in {_relative(root, list_path)})" if list_path else ""
        notes.append(
            f"paired {len(pairs)} images in {_relative(root, images_dir)}/ with "
            f"{_relative(root, masks_dir)}/{listed}"
        )
        notes.extend(split_notes)
        problems.update(split_problems)
    if problems and not skip_bad:  # what was found helps to read the problems
        raise DataError(problems, hint="\n".join([*notes, PAIRING_HINT]))
    return FolderLayout(kind, root, found, tuple(notes), problems)


def _detect(root):
    """`(kind, {split: (images_dir, masks_dir, list_path)})` of a folder."""
    split_folders = {
        split: (*pair, None)
        for split in SPLITS
        if (pair := _folder_pair(_child(root, split)))
    }
    if split_folders:
        return "split_folders", split_folders
    segnet = {
        split: (images, masks, _child(root, f"{split}.txt", directory=False))
        for split in SPLITS
        if (images := _child(root, split)) and (masks := _child(root, f"{split}annot"))
    }
    if segnet:
        return "segnet", segnet
    if pair := _folder_pair(root):
        return "single_folder", {ALL: (*pair, None)}
    entries = sorted(os.listdir(root))
    shown = ", ".join(entries[:8]) + (", ..." if len(entries) > 8 else "")
    raise ValueError(
        f"{root!r} holds no layout tfseg knows (it holds: {shown or 'nothing'}). "
        "Expected train/, val/, test/ each with images/ + masks/; train/ + "
        "trainannot/ (SegNet); one images/ + masks/ (or image/label, img/ann, "
        "images/annotations); Oxford-IIIT Pet's images/ + annotations/trimaps/; "
        'or dataset.json\'s "splits": {"train": {"images": ..., "masks": ...}}.'
    )


def _explicit_sources(root, splits):
    """Sources of dataset.json's `splits`; lists resolve paths from `root`."""
    sources = {}
    for split, spec in splits.items():
        listed = isinstance(spec, str)
        paths = [spec] if listed else [spec["images"], spec["masks"]]
        paths = [os.path.join(root, path) for path in paths]
        if not all(map(os.path.exists, paths)):
            missing = next(path for path in paths if not os.path.exists(path))
            raise ValueError(f"dataset.json's split {split!r}: {missing!r} is absent.")
        sources[split] = (root, root, *paths) if listed else (*paths, None)
    return sources


def _child(folder, name, directory=True):
    """The path of entry `name` of `folder`, matched whatever its case (the
    exact name first), if it is a folder (`directory`) or a file; else `None`."""
    exists = os.path.isdir if directory else os.path.isfile
    entries = sorted(os.listdir(folder), key=lambda entry: (entry != name, entry))
    paths = [os.path.join(folder, e) for e in entries if e.lower() == name.lower()]
    return next((path for path in paths if exists(path)), None)


def _folder_pair(folder):
    """`(images_dir, masks_dir)` of the first of `FOLDER_PAIRS` in `folder`
    (a path or `None`), or `None`."""
    for images_name, masks_name in FOLDER_PAIRS if folder else ():
        images, masks = _child(folder, images_name), _child(folder, masks_name)
        if images and masks:
            return images, masks
    return None


def _index(root, folder, kind):
    """`({stem: path}, problems, notes)` of the images (or masks) of
    `folder`: JPEG masks and a stem's second file are problems."""
    by_stem, problems, others = {}, {}, []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        stem, extension = os.path.splitext(entry)
        if entry.startswith(".") or os.path.isdir(path):
            continue
        if extension.lower() not in IMAGE_EXTENSIONS:
            others.append(entry)
        elif kind == "mask" and extension.lower() in JPEG_EXTENSIONS:
            problems[_relative(root, path)] = JPEG_MASK
        elif stem in by_stem:
            problems[_relative(root, path)] = f"a second {kind} {stem!r}: keep one"
        else:
            by_stem[stem] = path
    shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
    note = f"left out {len(others)} file(s) of {_relative(root, folder)}/ that are "
    return by_stem, problems, [f"{note}not images ({shown})"] if others else []


def _image_stem(mask_stem, image_stems):
    """The stem of the image a mask belongs to, or `None`."""
    stems = [mask_stem] + [
        mask_stem[: -len(suffix)]
        for suffix in MASK_SUFFIXES
        if mask_stem.lower().endswith(suffix)
    ]
    return next((stem for stem in stems if stem in image_stems), None)


def _pair_folders(root, images_dir, masks_dir):
    """`(pairs, problems, notes)` of an images folder and a masks folder."""
    images, problems, notes = _index(root, images_dir, "image")
    masks, mask_problems, mask_notes = _index(root, masks_dir, "mask")
    problems.update(mask_problems)
    notes.extend(mask_notes)
    # An image whose mask is refused (a JPEG) is named by its mask alone.
    refused = {_image_stem(_stem(path), images) for path in mask_problems}
    mask_of = {}
    for stem, mask_path in masks.items():
        image_stem = _image_stem(stem, images)
        if image_stem is None or image_stem in mask_of:
            problems[_relative(root, mask_path)] = (
                f"mask without an image in {_relative(root, images_dir)}/"
                if image_stem is None
                else f"a second mask of image {image_stem!r}: keep one"
            )
        else:
            mask_of[image_stem] = mask_path
    for stem, image_path in images.items():
        if stem not in mask_of and stem not in refused:
            problems[_relative(root, image_path)] = (
                f"image without a mask in {_relative(root, masks_dir)}/"
            )
    pairs = [Pair(images[stem], mask, stem) for stem, mask in mask_of.items()]
    return pairs, problems, notes


def _pair_list(root, images_dir, masks_dir, list_path):
    """`(pairs, problems, notes)` of a list of `IMAGE MASK` lines, whose
    paths may be another machine's (`/SegNet/CamVid/train/0001.png`)."""
    pairs, problems, where = [], {}, _relative(root, list_path)
    with open(list_path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            found = [(None, f"expected 'IMAGE MASK', found {line.strip()!r}")]
            if len(fields) == 2:
                found = [
                    _resolve(root, kind, written, folder)
                    for kind, written, folder in zip(
                        ("image", "mask"), fields, (images_dir, masks_dir)
                    )
                ]
            missing = [problem for _, problem in found if problem]
            if missing:
                problems[f"{where}, line {number}"] = "; ".join(missing)
            else:
                pairs.append(Pair(found[0][0], found[1][0], _stem(found[0][0])))
    listed = {pair.image_path for pair in pairs}
    # A folder of the split (not the root of dataset.json's lists) may hold more.
    unlisted = set(_index(root, images_dir, "image")[0].values()) - listed
    unlisted = unlisted if images_dir != root else ()
    note = f"left out {len(unlisted)} image(s) of {_relative(root, images_dir)}/ "
    return pairs, problems, [f"{note}that {where} does not list"] if unlisted else []


def _resolve(root, kind, written, folder):
    """`(path, None)`: the local file a listed path means (by its name, in
    `folder` or the folder of `root` named as its parent), or `(None,
    problem)` such as `"image X.png is not in train/ (X.jpg is there)"`."""
    written = written.replace("\\", "/")
    name, parent = os.path.basename(written), os.path.basename(os.path.dirname(written))
    candidates = [os.path.join(root, written), os.path.join(folder, name)]
    path = next((path for path in candidates if os.path.isfile(path)), None)
    sibling = _child(root, parent) if parent and path is None else None
    if sibling and os.path.isfile(os.path.join(sibling, name)):
        path = os.path.join(sibling, name)
    if path and kind == "mask" and path.lower().endswith(JPEG_EXTENSIONS):
        return None, f"mask {name} is {JPEG_MASK}"
    if path:
        return path, None
    namesakes = [e for e in sorted(os.listdir(folder)) if _stem(e) == _stem(name)]
    there = f" ({' and '.join(namesakes)} is there)" if namesakes else ""
    return None, f"{kind} {name} is not in {_relative(root, folder)}/{there}"


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _relative(root, path):
    return os.path.relpath(path, root).replace(os.sep, "/")


def inspect_masks(pairs, description=None, max_files=None):
    """Reads the masks of `pairs`: the values they hold, and their problems.

    Masks are read by `read_mask`; images are not decoded (their size is
    read from the file header), so 468 CamVid masks take about a second.

    Args:
        pairs: `Pair`s, e.g. a split of `find_layout(root).splits`.
        description: the `DatasetDescription` the values are checked
            against. Defaults to `None` (report the values found).
        max_files: read at most this many masks, evenly spaced over
            `pairs`. Defaults to `None` (all).

    Returns:
        A `MaskInspection`.

    Example:

    >>> layout = find_layout("data/camvid")  # doctest: +SKIP
    >>> sorted(inspect_masks(layout.splits["train"]).values)  # doctest: +SKIP
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    """
    pairs = list(pairs)
    if max_files is not None and len(pairs) > max_files:
        chosen = np.linspace(0, len(pairs) - 1, max_files).round().astype(int)
        pairs = [pairs[index] for index in np.unique(chosen)]
    rgb = description is not None and description.masks == "rgb"
    totals, files, problems, palette = collections.Counter(), {}, {}, None
    for pair in pairs:
        try:
            values, file_palette = read_mask(pair.mask_path, colors=rgb)
        except (OSError, ValueError) as error:  # PIL's errors are OSErrors
            problems[pair.mask_path] = f"the mask cannot be read: {error}"
            continue
        files[pair.mask_path] = counts = _counts(values)
        totals.update(counts)
        palette = palette or file_palette
        found = _problems(pair, values, counts, description)
        if found:
            problems[pair.mask_path] = "; ".join(found)
    ordered = sorted(totals.items(), key=lambda item: (type(item[0]) is tuple, item))
    return MaskInspection(dict(ordered), files, problems, palette)  # ids, colours


def read_mask(path, colors=False):
    """The raw values of a mask file, read with PIL, and its palette.

    Grayscale values (8 or 16 bits), palette indices, 0/255 of 1-bit masks,
    colours (gray levels where a grayscale mask was saved as RGB).

    Args:
        path: the mask file.
        colors: read colours (`"masks": "rgb"`) whatever the file's mode.
            Defaults to `False`.

    Returns:
        `(values, palette)`: `(H, W)` uint8 or uint16 values, or `(H, W, 3)`
        uint8 colours; the flat palette of a palette PNG, else `None`.
    """
    with Image.open(path) as image:
        palette = image.getpalette() if image.mode in ("P", "PA") else None
        if colors:
            return np.asarray(image.convert("RGB")), palette
        image = image.convert("L") if image.mode == "1" else image  # 0/255
        image = image.getchannel(0) if image.mode in ("LA", "PA") else image
        values = np.asarray(image)
    values = values[..., :3] if values.ndim == 3 else values  # no alpha
    if values.ndim == 3 and (values == values[..., :1]).all():
        values = values[..., 0]  # a grayscale mask saved as RGB
    if values.dtype.itemsize > 1 and values.ndim == 2:  # 16-bit, or 32-bit "I"
        if values.dtype.kind == "f" or values.min() < 0 or values.max() > 65535:
            raise ValueError(f"mode {image.mode} holds values that are no class ids")
        values = values.astype(np.uint16)
    return values, palette


def _counts(values):
    """`{value: pixels}` of a mask: ints, or `(r, g, b)` for colours."""
    if values.ndim == 2:
        counts = np.bincount(values.ravel())
        return {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
    packed, counts = np.unique(pack_colors(values), return_counts=True)
    return {unpack_color(p): int(c) for p, c in zip(packed, counts)}


def _problems(pair, values, counts, description):
    """The problems of one mask, each a phrase."""
    found, size, (height, width) = [], None, values.shape[:2]
    try:
        with Image.open(pair.image_path) as image:  # the header only
            size = image.size
    except OSError as error:
        found.append(f"its image cannot be read: {error}")
    if size and size != (width, height):
        found.append(
            f"mask is {width}x{height} px but its image "
            f"{os.path.basename(pair.image_path)} is {size[0]}x{size[1]} px"
        )
    rgb = description is not None and description.masks == "rgb"
    if values.ndim == 3 and not rgb:
        found.append(
            "an RGB colour mask, but dataset.json gives no colour table: add "
            '"masks": "rgb" and "colors" (one [r, g, b] per class)'
        )
    elif description is not None:
        declared = description.declared_values()
        unknown = {v: c for v, c in counts.items() if v not in declared}
        if unknown:
            found.append(undeclared_problem(unknown))
    return found
