"""Preprocessed examples as NumPy arrays, and their `.npz` files.

NumPy only: a machine without TensorFlow (a GPU box training on the JAX
backend) loads an exported split with `load_npz` and feeds it to
`model.fit` directly.
"""

import dataclasses
import os

import numpy as np

from tfseg.files import atomic_path

NPZ_FORMAT_VERSION = 1


@dataclasses.dataclass
class Examples:
    """One split, resized: what the pipeline caches and `export_npz` writes.

    Attributes:
        images: uint8 `(N, H, W, 3)`.
        masks: uint8 `(N, H, W, 1)`; 0 = pet, 1 = background, 2 = border
            (binary: 0 = pet and border, 1 = background).
        names: str `(N,)` image names.
        breed_ids: int32 `(N,)`, 0..36 or -1 if unknown.
        species: int32 `(N,)`, 0 = cat, 1 = dog, -1 if unknown.
        original_masks: `None`, or a list of N uint8 `(h, w, 1)` masks at
            each image's original resolution (for full-resolution scores).
        skipped: `{name: problem}` of the examples left out by `skip_bad`.
    """

    images: np.ndarray
    masks: np.ndarray
    names: np.ndarray
    breed_ids: np.ndarray
    species: np.ndarray
    original_masks: list = None
    skipped: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.names)

    def take(self, indices):
        """The examples at `indices`, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        originals = self.original_masks
        return Examples(
            self.images[indices],
            self.masks[indices],
            self.names[indices],
            self.breed_ids[indices],
            self.species[indices],
            None if originals is None else [originals[i] for i in indices],
            dict(self.skipped),
        )

    def center_crop(self, size):
        """The examples' central `size` `(height, width)` windows (a run
        trained on `--crop` windows validates on these); original-size
        masks are dropped."""
        height, width = size
        top = (self.images.shape[1] - height) // 2
        left = (self.images.shape[2] - width) // 2
        window = np.s_[:, top : top + height, left : left + width]
        return dataclasses.replace(
            self,
            images=self.images[window],
            masks=self.masks[window],
            original_masks=None,
            skipped=dict(self.skipped),
        )


def split_path(path, split):
    """Where `export-data --out PATH` writes `split`: `<stem>_<split>.npz`."""
    stem, extension = os.path.splitext(os.fspath(path))
    return f"{stem}_{split}{extension or '.npz'}"


def export_npz(examples, path):
    """Writes `examples` to an `.npz` file, atomically.

    The file holds `images`, `masks`, `names`, `breed_ids` and `species`
    (original-resolution masks are not exported). It is written to a
    temporary name and renamed (`tfseg.files.atomic_path`), so a crash never
    leaves a broken file, and it gets the user's umask like any file they
    write (0644 under umask 022).

    Raises:
        RunError: (a `ValueError`) if the file cannot be written, saying why.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as temporary:
        # An open file, not a name: `np.savez` would add ".npz" to a name.
        with open(temporary, "wb") as file:
            np.savez(
                file,
                images=examples.images,
                masks=examples.masks,
                names=examples.names.astype(str),
                breed_ids=examples.breed_ids,
                species=examples.species,
                format_version=np.int32(NPZ_FORMAT_VERSION),
            )
            file.flush()
            os.fsync(file.fileno())


def load_npz(path):
    """Reads an `.npz` file written by `export_npz`.

    Raises:
        ValueError: if the file is missing, is not such a file, or is in
            another format version than `NPZ_FORMAT_VERSION`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(
            f"No exported data at {path!r}. Write one with "
            "`python -m tfseg export-data --out FILE`."
        )
    with np.load(path, allow_pickle=False) as data:
        keys = {"images", "masks", "names", "breed_ids", "species"}
        if not keys <= set(data.files):
            raise ValueError(
                f"{path!r} is not a tfseg export: it lacks "
                f"{sorted(keys - set(data.files))}."
            )
        found = int(data["format_version"]) if "format_version" in data.files else None
        if found != NPZ_FORMAT_VERSION:
            raise ValueError(
                f"{path!r} is in tfseg's .npz format version {found}, but this "
                f"tfseg reads version {NPZ_FORMAT_VERSION}. Export the splits "
                "again with this tfseg (`python -m tfseg export-data --out FILE`)."
            )
        return Examples(
            images=data["images"],
            masks=data["masks"],
            names=data["names"],
            breed_ids=data["breed_ids"],
            species=data["species"],
        )
