"""What a dataset folder cannot say itself: class names, void values, colours.

Pure Python and NumPy (no TensorFlow), so a folder is described and checked
anywhere. A `dataset.json` beside the data holds the description; only
`classes` is required::

    {
      "classes": ["sky", "building", "road"],
      "ignore": [11],
      "mask_values": [0, 1, 2],
      "colors": [[128, 128, 128], [128, 0, 0], [128, 64, 128]],
      "masks": "ids",
      "splits": {"train": "train.txt", "val": {"images": "v", "masks": "va"}}
    }

A class id is the position of its name in `classes`. Mask pixels hold the
class's `mask_values` entry (`"masks": "ids"`) or its `colors` entry
(`"masks": "rgb"`); void values (`ignore`) become class id `VOID` (255).
"""

import dataclasses
import difflib
import json
import os

import numpy as np

from tfseg.config import SPLITS
from tfseg.config import VOID
from tfseg.files import atomic_write

DATASET_JSON = "dataset.json"
MASK_KINDS = ("ids", "rgb")
MAX_MASK_VALUE = 65535  # 16-bit PNGs
FIELDS = ("classes", "ignore", "mask_values", "colors", "masks", "splits")


class DataError(ValueError):
    """Bad input data: names each broken file and its problem.

    Its message names the Python argument that leaves broken files out
    (`skip_bad=True`); `cli_message`, which the command line prints, names
    the flag (`--skip-bad`). Here, without TensorFlow, to raise anywhere.

    Attributes:
        problems: `{name: problem}` of every broken example found.
    """

    MAX_SHOWN = 100  # every problem of a damaged copy; beyond, not the dataset

    def __init__(self, problems, hint=""):
        self.problems = dict(problems)
        self.hint = hint
        super().__init__(self.describe("skip_bad=True"))

    @property
    def cli_message(self):
        return self.describe("--skip-bad")

    def describe(self, skip_option):
        """The message, with `skip_option` as the way to leave files out."""
        shown = sorted(self.problems.items())[: self.MAX_SHOWN]
        lines = [f"  {name}: {problem}" for name, problem in shown]
        if len(self.problems) > len(shown):
            lines.append(
                f"  ... and {len(self.problems) - len(shown)} more "
                "(`tfseg verify-data DIR` lists every one)"
            )
        return (
            f"{len(self.problems)} broken example(s):\n"
            + "\n".join(lines)
            + f"\nFix or remove these files, or pass {skip_option} to leave them "
            "out and report them." + (f"\n{self.hint}" if self.hint else "")
        )


@dataclasses.dataclass(frozen=True)
class DatasetDescription:
    """The classes of a dataset and how its mask files write them.

    Checked and normalised (lists become tuples) on creation, so a
    description that exists is consistent.

    Args:
        classes: class names in id order.
        ignore: mask values that are void (ints; `[r, g, b]` colours for
            RGB masks). Defaults to `()`.
        mask_values: the value of each class in the mask files, in id
            order; `None` for RGB masks. Defaults to `None` (the ids
            `0..num_classes - 1` for id masks).
        colors: one `(r, g, b)` per class, to draw with and, for RGB masks,
            to read the masks with. Defaults to `None`.
        masks: `"ids"` (grayscale or palette values) or `"rgb"` (colours).
            Defaults to `"ids"`.
        splits: `{split: list file}` or `{split: {"images": folder, "masks":
            folder}}`, paths relative to the dataset folder. Defaults to
            `None` (the folder layout decides).

    Raises:
        ValueError: one line saying which field is wrong, what was received
            and what is expected.

    Example:

    >>> description = DatasetDescription(["sky", "road"], ignore=[11])
    >>> description.mask_lookup()[[0, 1, 11]].tolist()
    [0, 1, 255]
    """

    classes: tuple
    ignore: tuple = ()
    mask_values: tuple | None = None
    colors: tuple | None = None
    masks: str = "ids"
    splits: dict | None = None

    def __post_init__(self):
        classes = _check_classes(self.classes)
        if self.masks not in MASK_KINDS:
            raise ValueError(
                f"`masks` must be one of {list(MASK_KINDS)}; received "
                f"{_shown(self.masks)}."
            )
        rgb = self.masks == "rgb"
        if rgb and (self.colors is None or self.mask_values is not None):
            raise ValueError(
                '`"masks": "rgb"` masks are read through `colors`, one [r, g, b] '
                "per class in id order: give `colors`, and no `mask_values`."
            )
        colors, mask_values = self.colors, self.mask_values
        if colors is not None:
            colors = _check_values("colors", colors, classes, rgb=True)
        if not rgb and mask_values is None:
            mask_values = tuple(range(len(classes)))
        elif not rgb:
            mask_values = _check_values("mask_values", mask_values, classes)
        ignore = [self.ignore] if type(self.ignore) is int else self.ignore
        ignore = _check_values("ignore", ignore, rgb=rgb)
        class_values = colors if rgb else mask_values
        clashes = [value for value in ignore if value in class_values]
        if clashes:
            raise ValueError(
                f"`ignore` value {_shown(clashes[0])} is also the mask "
                f"{'colour' if rgb else 'value'} of class "
                f"{classes[class_values.index(clashes[0])]!r}; a value is either "
                "a class or void: remove it from one of them."
            )
        fields = dict(classes=classes, ignore=ignore, mask_values=mask_values)
        splits = self.splits if self.splits is None else _check_splits(self.splits)
        fields.update(colors=colors, splits=splits)
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @property
    def num_classes(self):
        return len(self.classes)

    @classmethod
    def from_dict(cls, data):
        """A description from parsed `dataset.json` content.

        Raises:
            ValueError: for content that is not an object, unknown keys
                (listed with the known ones) or any invalid field.
        """
        if not isinstance(data, dict):
            raise ValueError(
                "`dataset.json` must hold one JSON object, "
                f'{{"classes": [...], ...}}; received {type(data).__name__}.'
            )
        unknown = [key for key in data if key not in FIELDS]
        if unknown:
            named = ", ".join(repr(key) + _guess(key) for key in unknown)
            raise ValueError(
                f"unknown key(s) {named}; the known keys are {', '.join(FIELDS)}."
            )
        if "classes" not in data:
            raise ValueError('`classes` is missing: "classes": [names in id order].')
        return cls(**data)

    def to_dict(self):
        """The description as JSON-ready values (what `from_dict` reads)."""
        data = dataclasses.asdict(self)  # tuples of colours become lists
        data = {key: _lists(value) for key, value in data.items()}
        return {key: value for key, value in data.items() if value is not None}

    def to_json(self):
        """The `dataset.json` text: one key a line, long lists one item a line."""
        lines = []
        for key, value in self.to_dict().items():
            text = json.dumps(value)
            if isinstance(value, list) and len(text) > 72:
                items = ",\n".join(f"    {json.dumps(item)}" for item in value)
                text = f"[\n{items}\n  ]"
            lines.append(f"  {json.dumps(key)}: {text}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    def declared_values(self):
        """The mask values a mask may hold: each class's, and the void ones
        (ints for id masks, `(r, g, b)` tuples for RGB masks)."""
        values = self.colors if self.masks == "rgb" else self.mask_values
        return set(values) | set(self.ignore)

    def mask_lookup(self, size=None):
        """A table from raw mask value to class id, for id masks.

        `table[mask]` gives class ids; void and undeclared values give
        `VOID` (`inspect_masks` names the undeclared ones).

        Args:
            size: 256 (8-bit masks) or 65536 (16-bit masks). Defaults to
                `None`: 256 when every declared value fits, else 65536.

        Returns:
            uint8 array of `size` entries.
        """
        if self.masks == "rgb":
            raise ValueError("Colour masks are read with `colors_to_ids`.")
        largest = max(self.declared_values())
        size = size or (256 if largest < 256 else MAX_MASK_VALUE + 1)
        if size not in (256, MAX_MASK_VALUE + 1) or largest >= size:
            raise ValueError(
                f"`size` must be 256 or 65536, above every mask value (largest "
                f"{largest}); received {size!r}."
            )
        table = np.full(size, VOID, np.uint8)
        table[list(self.mask_values)] = np.arange(self.num_classes)
        return table

    def colors_to_ids(self, rgb, file_name):
        """Class ids of an RGB colour mask, for `"masks": "rgb"`.

        Args:
            rgb: uint8 array `(H, W, 3)` (or `(H, W, 4)`: alpha is dropped).
            file_name: the mask's file, named in the error.

        Returns:
            uint8 array `(H, W)` of class ids, `VOID` for void colours.

        Raises:
            DataError: naming `file_name` and each unknown colour's pixels.
        """
        if self.masks != "rgb":
            raise ValueError("Id masks are read with `mask_lookup()`, not colours.")
        ids = np.array([*range(self.num_classes), *[VOID] * len(self.ignore)])
        keys = pack_colors(np.array(self.colors + self.ignore))
        keys, ids = keys[np.argsort(keys)], ids[np.argsort(keys)].astype(np.uint8)
        packed = pack_colors(rgb)
        index = np.minimum(np.searchsorted(keys, packed), len(keys) - 1)
        known = keys[index] == packed
        if not known.all():
            unknown, counts = np.unique(packed[~known], return_counts=True)
            counts = dict(zip(map(unpack_color, unknown), counts.tolist()))
            raise DataError({file_name: undeclared_problem(counts)})
        return ids[index]


def undeclared_problem(counts):
    """`"N px of K value(s) that dataset.json does not declare: 7 (12 px),
    ..."` for `{value: pixels}` (ints or colours), largest first, five named."""
    order = sorted(counts, key=lambda value: -counts[value])
    named = ", ".join(f"{value} ({counts[value]} px)" for value in order[:5])
    more = f" and {len(order) - 5} more" if len(order) > 5 else ""
    kind = "colour(s)" if isinstance(order[0], tuple) else "value(s)"
    return (
        f"{sum(counts.values())} px of {len(order)} {kind} that dataset.json "
        f"does not declare (as a class or in `ignore`): {named}{more}"
    )


def pack_colors(rgb):
    """Colours `(..., 3)` (or `(..., 4)`, alpha dropped) as uint32 `0xRRGGBB`."""
    rgb = np.asarray(rgb).astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unpack_color(packed):
    """`0xRRGGBB` back to an `(r, g, b)` tuple of ints."""
    return (int(packed) >> 16 & 255, int(packed) >> 8 & 255, int(packed) & 255)


def read_dataset_json(path):
    """Reads and checks a `dataset.json`.

    Args:
        path: the file.

    Returns:
        A `DatasetDescription`.

    Raises:
        ValueError: one line starting with `path`: for a JSON syntax error
            its line and column, else the field that is wrong, what was
            received and what is expected.

    Example:

    >>> read_dataset_json("data/camvid/dataset.json").classes  # doctest: +SKIP
    ('sky', 'building', ...)
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}, line {error.lineno}, column {error.colno}: {error.msg} "
            "(dataset.json is not valid JSON)."
        ) from None
    try:
        return DatasetDescription.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None


def write_dataset_json(path, description):
    """Writes `description` to `path` (atomically); `read_dataset_json`
    reads back an equal description."""
    atomic_write(path, description.to_json())


def describe_from_masks(values_found, palette=None):
    """A starting description of a dataset without `dataset.json`.

    Each value found is a class, `class_<value>`, in increasing order, its
    value recorded in `mask_values` (binary 0/255 masks give `[0, 255]`).
    255 beside two or more other values is void (`ignore`), as in Pascal
    VOC. Colours (`(r, g, b)` tuples, of RGB masks) give an RGB description.

    Args:
        values_found: the mask values (ints or `(r, g, b)` tuples), e.g. the
            keys of `inspect_masks(...).values`.
        palette: the PNG palette of palette masks (flat `[r, g, b, r, ...]`,
            as PIL's `getpalette()`, or `(N, 3)`), which gives the colours.
            Defaults to `None` (no colours).

    Returns:
        A `DatasetDescription`.

    Raises:
        ValueError: for no values, more than 255 classes, or colours and ids mixed.
    """
    values = sorted(set(values_found), key=lambda value: (type(value) is tuple, value))
    if len({type(value) is tuple for value in values}) > 1:  # described.py names files
        raise ValueError("The masks mix colours (RGB masks) with single values.")
    if not 0 < len(values) <= VOID + (VOID in values):
        raise ValueError(
            f"The masks hold {len(values)} distinct values; class masks hold 1 to "
            "255 (class id 255 is void). Are these class masks, or photos?"
        )
    if isinstance(values[0], tuple):
        names = [f"class_{r}_{g}_{b}" for r, g, b in values]
        return DatasetDescription(names, colors=values, masks="rgb")
    ignore = (VOID,) if VOID in values and len(values) >= 3 else ()
    values = [value for value in values if value not in ignore]
    palette = np.zeros((0, 3)) if palette is None else np.reshape(palette, (-1, 3))
    colors = [
        tuple(map(int, palette[value])) for value in values if value < len(palette)
    ]
    colors = colors if len(set(colors)) == len(values) else None  # all, distinct
    names = [f"class_{value}" for value in values]
    return DatasetDescription(names, ignore, values, colors)


def _check_classes(classes):
    names = isinstance(classes, (list, tuple)) and 0 < len(classes) <= VOID
    if not (names and all(isinstance(name, str) and name for name in classes)):
        raise ValueError(
            "`classes` must be a list of 1 to 255 class names in id order, e.g. "
            f'["background", "road"]; received {_shown(classes)}.'
        )
    repeated = sorted({name for name in classes if classes.count(name) > 1})
    if repeated:
        raise ValueError(f"`classes` names {repeated} more than once.")
    return tuple(classes)


def _check_values(field, values, classes=None, rgb=False):
    """Mask values (or `[r, g, b]` colours) as a tuple, distinct, one per
    class when `classes` is given."""
    largest = 255 if rgb else MAX_MASK_VALUE
    expected = "[r, g, b] colours, 0..255 each" if rgb else f"integers 0..{largest}"
    if not isinstance(values, (list, tuple)):
        raise ValueError(
            f"`{field}` must be a list of {expected}; received {_shown(values)}."
        )
    checked = []
    for value in values:
        valid = _is_int(value, largest)
        if rgb:
            valid = isinstance(value, (list, tuple)) and len(value) == 3
            value = tuple(value) if valid else value
            valid = valid and all(map(_is_int, value))
        if not valid:
            raise ValueError(
                f"`{field}` must be a list of {expected}; received "
                f"{_shown(value)} in {_shown(values)}."
            )
        if value in checked:
            first, second = checked.index(value), len(checked)
            twice = f"lists {_shown(value)} twice"
            if classes is not None and second < len(classes):
                twice = (
                    f"gives {_shown(value)} to both {classes[first]!r} and "
                    f"{classes[second]!r}; each class needs its own"
                )
            raise ValueError(f"`{field}` {twice}.")
        checked.append(value)
    if classes is not None and len(checked) != len(classes):
        raise ValueError(
            f"`{field}` has {len(checked)} entries for {len(classes)} classes; "
            f"expected one per class ({expected}), in the order of `classes`."
        )
    return tuple(checked)


def _check_splits(splits):
    pairs = splits.items() if isinstance(splits, dict) and splits else [("", splits)]
    for split, spec in pairs:
        folders = isinstance(spec, dict) and sorted(spec) == ["images", "masks"]
        paths = list(spec.values()) if folders else [spec]
        if split not in SPLITS or not all(isinstance(p, str) and p for p in paths):
            raise ValueError(
                '`splits` must be {split: list file} or {split: {"images": folder, '
                f'"masks": folder}}}} with splits among {list(SPLITS)}; received '
                f"{_shown(splits)}."
            )
    return dict(splits)


def _guess(key):
    close = difflib.get_close_matches(key, FIELDS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_int(value, largest=255):
    return type(value) is int and 0 <= value <= largest


def _lists(value):
    """Tuples (of colours too) as JSON's lists."""
    if isinstance(value, tuple):
        return [_lists(item) for item in value]
    return value


def _shown(value, limit=60):
    """`value` as JSON, cut at `limit` characters."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."
