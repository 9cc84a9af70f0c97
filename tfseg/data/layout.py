"""The official Oxford-IIIT Pet folder layout: records, split lists and splits.

Pure Python (no TensorFlow), so listing, splitting and checking paths work
anywhere. The layout, as the dataset's authors distribute it::

    ROOT/images/NAME.jpg
    ROOT/annotations/trimaps/NAME.png
    ROOT/annotations/trainval.txt     lines "NAME CLASS_ID SPECIES BREED_ID"
    ROOT/annotations/test.txt

CLASS_ID is 1..37 (the breed, alphabetical), SPECIES 1 = cat, 2 = dog.
"""

import collections
import dataclasses
import os
import random

from tfseg.config import SPLITS

# The 37 breeds in the official CLASS_ID order (1-based there, 0-based here).
# Cat breeds are capitalised in file names, dog breeds are not.
BREEDS = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier",
    "basset_hound", "beagle", "Bengal", "Birman", "Bombay", "boxer",
    "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel",
    "english_setter", "german_shorthaired", "great_pyrenees", "havanese",
    "japanese_chin", "keeshond", "leonberger", "Maine_Coon",
    "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug",
    "Ragdoll", "Russian_Blue", "saint_bernard", "samoyed", "scottish_terrier",
    "shiba_inu", "Siamese", "Sphynx", "staffordshire_bull_terrier",
    "wheaten_terrier", "yorkshire_terrier",
)  # fmt: skip
SPLIT_LISTS = {"trainval": "trainval.txt", "test": "test.txt"}


@dataclasses.dataclass(frozen=True)
class Record:
    """One image/trimap pair.

    Attributes:
        name: file stem, e.g. `"Abyssinian_1"`.
        image_path: path of the image file.
        trimap_path: path of the trimap file.
        breed_id: 0..36 in `BREEDS` order, -1 if unknown.
        species: 0 = cat, 1 = dog, -1 if unknown.
    """

    name: str
    image_path: str
    trimap_path: str
    breed_id: int = -1
    species: int = -1


def breed_of(name):
    """Breed id and species from a file name such as `"Bengal_12"`.

    Returns `(-1, -1)` for a name that is not `BREED_NUMBER` of a known breed.
    """
    breed = name.rsplit("_", 1)[0]
    for breed_id, known in enumerate(BREEDS):
        if known.lower() == breed.lower():
            return breed_id, 0 if known[0].isupper() else 1
    return -1, -1


class OxfordPetFolder:
    """A local copy of Oxford-IIIT Pet in the official archive layout.

    Args:
        root: folder holding `images/` and `annotations/trimaps/`.

    Raises:
        ValueError: if `root` is not such a folder.

    Example:

    >>> folder = OxfordPetFolder("data/oxford_iiit_pet")  # doctest: +SKIP
    >>> splits = folder.splits(val_fraction=0.1, seed=0)  # doctest: +SKIP
    """

    def __init__(self, root):
        self.root = os.fspath(root)
        check_folder(self.root)
        self._listings = {}  # folder -> its file names, read when needed
        self.images_dir = os.path.join(self.root, "images")
        self.trimaps_dir = os.path.join(self.root, "annotations", "trimaps")
        missing = [
            path
            for path in (self.images_dir, self.trimaps_dir)
            if not os.path.isdir(path)
        ]
        if missing:
            raise ValueError(
                f"{self.root!r} is not an Oxford-IIIT Pet folder: "
                f"{' and '.join(repr(m) for m in missing)} not found. Expected "
                "ROOT/images/NAME.jpg and ROOT/annotations/trimaps/NAME.png, as "
                "in the official images.tar.gz and annotations.tar.gz extracted "
                "into one folder; or leave the data folder out to use "
                "TensorFlow Datasets."
            )

    def image_path(self, name):
        return os.path.join(self.images_dir, f"{name}.jpg")

    def trimap_path(self, name):
        return os.path.join(self.trimaps_dir, f"{name}.png")

    def is_missing(self, kind, path):
        """`"image file PATH is missing"`, naming any file beside it of the
        same stem (`X.png` where `X.jpg` is expected)."""
        folder, name = os.path.split(path)
        if folder not in self._listings:
            self._listings[folder] = sorted(os.listdir(folder))
        stem = os.path.splitext(name)[0]
        namesakes = [
            other
            for other in self._listings[folder]
            if os.path.splitext(other)[0] == stem and other != name
        ]
        if not namesakes:
            return f"{kind} file {path!r} is missing"
        return (
            f"{kind} file {path!r} is missing ({' and '.join(namesakes)} is "
            "there: images are read as NAME.jpg, trimaps as NAME.png)"
        )

    def stems(self, folder, extension):
        """File stems in `folder` with `extension`, without hidden files.

        The official trimaps archive also holds macOS `._NAME.png` files.
        """
        return {
            entry[: -len(extension)]
            for entry in os.listdir(folder)
            if entry.endswith(extension) and not entry.startswith(".")
        }

    def paired_names(self):
        """Names that have both an image and a trimap, sorted."""
        images = self.stems(self.images_dir, ".jpg")
        return sorted(images & self.stems(self.trimaps_dir, ".png"))

    def read_list(self, split):
        """Parses `annotations/{split}.txt`; `None` if the file is absent.

        Returns:
            list of `(name, breed_id, species)` in file order.

        Raises:
            ValueError: for a malformed line, naming the file and line.
        """
        path = os.path.join(self.root, "annotations", SPLIT_LISTS[split])
        if not os.path.isfile(path):
            return None
        entries = []
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                fields = line.split()
                try:
                    name, class_id, species = fields[0], int(fields[1]), int(fields[2])
                    if not (1 <= class_id <= len(BREEDS) and species in (1, 2)):
                        raise ValueError
                except (IndexError, ValueError):
                    raise ValueError(
                        f"{path}, line {number}: expected 'NAME CLASS_ID SPECIES "
                        f"BREED_ID' with CLASS_ID 1..37 and SPECIES 1 or 2; "
                        f"found {line!r}."
                    ) from None
                entries.append((name, class_id - 1, species - 1))
        return entries

    def records(self, entries):
        """Records for `(name, breed_id, species)` entries, and the missing files.

        Returns:
            `(records, problems)`: problems maps a name to what is missing.
        """
        records, problems = [], {}
        for name, breed_id, species in entries:
            image, trimap = self.image_path(name), self.trimap_path(name)
            missing = [
                kind
                for kind, path in (("image", image), ("trimap", trimap))
                if not os.path.isfile(path)
            ]
            if missing:
                problems[name] = " and ".join(
                    self.is_missing(kind, path)
                    for kind, path in (("image", image), ("trimap", trimap))
                    if kind in missing
                )
                continue
            records.append(Record(name, image, trimap, breed_id, species))
        return records, problems

    def splits(self, val_fraction=0.1, test_fraction=0.5, seed=0, wanted=SPLITS):
        """Train, validation and test records, and the problems found.

        - With `trainval.txt` and `test.txt`: the official split; validation
          is carved from trainval, stratified by breed.
        - With one list: the other split is every other image/trimap pair.
        - With none: all pairs, split by `test_fraction`, stratified by breed.

        Only the lists the `wanted` splits need are read: the test split
        alone reads `test.txt` (and `trainval.txt` only where there is no
        `test.txt`), so a damaged list of the other split does not matter.

        Args:
            val_fraction: share of trainval held out for validation, per
                breed. Defaults to `0.1`.
            test_fraction: share of all pairs used for testing when the
                folder has no split lists. Defaults to `0.5` (the official
                split is about half and half).
            seed: seed of the random splits. Defaults to `0`.
            wanted: the splits to list. Defaults to all of `SPLITS`.

        Returns:
            `(splits, problems)`: `{split: [...]}` of `Record`s for each
            wanted split, and for each `{name: problem}` for listed names
            whose files are missing (trainval's count as train's).
        """
        check_splits(wanted)
        groups = {"trainval": {"train", "val"}, "test": {"test"}}
        needed = [group for group, members in groups.items() if members & set(wanted)]
        other = {"trainval": "test", "test": "trainval"}
        lists = {group: self.read_list(group) for group in needed}
        for group in needed:  # a list that is absent: the other one decides
            if lists[group] is None and other[group] not in lists:
                lists[other[group]] = self.read_list(other[group])
        if all(entries is None for entries in lists.values()):
            everything = [(name, *breed_of(name)) for name in self.paired_names()]
            lists["trainval"], lists["test"] = stratified_split(
                everything, test_fraction, seed
            )
        for group in needed:
            if lists[group] is None:
                taken = {entry[0] for entry in lists[other[group]]}
                lists[group] = [
                    (name, *breed_of(name))
                    for name in self.paired_names()
                    if name not in taken
                ]
        splits, problems = {}, {}
        if "trainval" in needed:
            trainval, trainval_problems = self.records(lists["trainval"])
            splits["train"], splits["val"] = stratified_split(
                trainval, val_fraction, seed
            )
            problems.update(train=trainval_problems, val={})
        if "test" in needed:
            splits["test"], problems["test"] = self.records(lists["test"])
        return splits, problems


def check_folder(root):
    """Raises `ValueError` for a data folder path that does not exist or is
    a file (an `.npz` export is named as one: it is read by `--data-npz`)."""
    if not os.path.exists(root):
        raise ValueError(
            f"The data folder {root!r} does not exist. Pass the folder holding "
            "images/ and annotations/ (the official archives extracted), or "
            "leave the data folder out to use TensorFlow Datasets."
        )
    if root.endswith(".npz") and os.path.isfile(root):
        raise ValueError(
            f"{root!r} is a file of exported splits (.npz), not a data folder: "
            "use --data-npz (data_npz=) for it, not --data-dir."
        )
    if not os.path.isdir(root):
        raise ValueError(
            f"The data folder {root!r} is a file, not a folder. Pass the folder "
            "holding images/ and annotations/."
        )


def check_splits(splits):
    """Raises `ValueError` for a split name that is not one of `SPLITS`."""
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"Unknown split(s) {unknown}; choose from {list(SPLITS)}.")


def stratified_split(items, fraction, seed):
    """Splits items into `(rest, held_out)`, holding out `fraction` per breed.

    Items are `Record`s or `(name, breed_id, species)` tuples. Each breed
    with at least two items gives `round(fraction * count)` of them, at least
    one (when `fraction > 0`) and all but one at most; the result does not
    depend on the input order.
    """
    by_breed = collections.defaultdict(list)
    for item in items:
        breed_id = item.breed_id if isinstance(item, Record) else item[1]
        by_breed[breed_id].append(item)
    rng = random.Random(seed)
    held_out = set()
    for breed_id in sorted(by_breed):
        group = sorted(by_breed[breed_id], key=_name)
        count = round(fraction * len(group))
        if fraction > 0 and len(group) >= 2:
            count = min(max(count, 1), len(group) - 1)
        held_out.update(_name(item) for item in rng.sample(group, count))
    rest = [item for item in items if _name(item) not in held_out]
    taken = [item for item in items if _name(item) in held_out]
    return rest, taken


def _name(item):
    return item.name if isinstance(item, Record) else item[0]
