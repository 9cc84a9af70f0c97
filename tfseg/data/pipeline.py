"""The tf.data pipeline: decode, check, resize, cache, shuffle, batch, augment.

Two stages:

1. `load_examples` decodes and resizes a split once, in a parallel
   `tf.data` map, and keeps the result as NumPy arrays (`Examples`): the
   in-memory cache, which `cache_dir` also keeps on disk as `.npz`. Decoding
   is the cost of an epoch from raw files, and the JPEG decoder's DCT-domain
   downscaling (`ratio` 2, 4 or 8) cuts it: a 500 px photo bound for 128 px
   is decoded at 250 px, then resized by area averaging. Masks are resized
   with nearest neighbour only. Every example is checked (image and trimap
   sizes agree, trimap values in {1, 2, 3}); a file the decoders reject is
   dropped from the run, then named by a per-file check (`inspect_pair`),
   so one pass finds every problem and they are reported together.
2. `make_dataset` serves the cached arrays: shuffle, batch, then augment
   whole batches at once (one affine transform per image, applied to
   image and mask alike; colour jitter on images only), prefetch.
"""

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from tfseg.config import DEFAULT_BATCH_SIZE
from tfseg.config import DEFAULT_IMAGE_SIZE
from tfseg.config import image_shape
from tfseg.data.arrays import NPZ_FORMAT_VERSION
from tfseg.data.arrays import Examples
from tfseg.data.arrays import export_npz
from tfseg.data.arrays import load_npz
from tfseg.data.augment import tf_ops
from tfseg.data.class_weights import class_weight_table
from tfseg.data.class_weights import pixel_weights
from tfseg.data.dataset import DataError
from tfseg.data.decoding import STATUS_MESSAGES
from tfseg.data.decoding import STATUS_OK
from tfseg.data.decoding import check_resize_mode
from tfseg.data.decoding import decode_image
from tfseg.data.decoding import inspect_folder_pair
from tfseg.data.decoding import inspect_pair
from tfseg.data.decoding import preprocess
from tfseg.data.decoding import preprocess_ids
from tfseg.progress import Progress

AUTOTUNE = tf.data.AUTOTUNE


def _records_dataset(records):
    return tf.data.Dataset.from_tensor_slices(
        {
            "name": [r.name for r in records],
            "image_path": [r.image_path for r in records],
            "trimap_path": [r.trimap_path for r in records],
            "breed_id": np.array([r.breed_id for r in records], np.int32),
            "species": np.array([r.species for r in records], np.int32),
        }
    )


def decode_and_preprocess(
    image_bytes, trimap_bytes, size, mode="stretch", binary=False, keep_original=False
):
    """Graph function: encoded image and trimap bytes to a checked example."""
    image, image_size = decode_image(image_bytes, max(image_shape(size)))
    trimap = tf.io.decode_png(trimap_bytes, channels=1)
    return preprocess(image, image_size, trimap, size, mode, binary, keep_original)


def load_examples(
    records,
    image_size=DEFAULT_IMAGE_SIZE,
    *,
    resize_mode="stretch",
    binary=False,
    keep_original_mask=False,
    skip_bad=False,
    cache_dir=None,
    progress=False,
):
    """Decodes, checks and resizes image/trimap files into `Examples`.

    Args:
        records: `Record`s (see `OxfordPetFolder.splits`).
        image_size: output side in pixels. Defaults to `128`.
        resize_mode: `"stretch"`, `"crop"` or `"pad"` (see `resize_pair`).
            Defaults to `"stretch"`.
        binary: pet and border vs background. Defaults to `False`.
        keep_original_mask: also keep each mask at its original resolution.
            Defaults to `False`.
        skip_bad: leave broken examples out (listed in `Examples.skipped`)
            instead of raising. Defaults to `False`.
        cache_dir: folder for an `.npz` cache of the result, keyed by the
            files and settings; `None` keeps it in memory only. Defaults to
            `None`.
        progress: show progress while decoding (`tfseg.progress.Progress`).
            Defaults to `False`.

    Returns:
        `Examples`.

    Raises:
        DataError: naming every broken file at once, unless `skip_bad`.
        ValueError: for an empty split or a bad setting.
    """
    check_resize_mode(resize_mode)
    if not records:
        raise ValueError(
            "The split is empty: no image/trimap pairs to load. Check the data "
            "folder and its split lists."
        )
    found = decode_records(
        records,
        image_size,
        resize_mode=resize_mode,
        binary=binary,
        keep_original_mask=keep_original_mask,
        cache_dir=cache_dir,
        progress=Progress(len(records), "decoding", enabled=progress),
    )
    return check_problems({"requested": found}, skip_bad)["requested"]


def decode_records(
    records,
    image_size,
    *,
    resize_mode="stretch",
    binary=False,
    keep_original_mask=False,
    cache_dir=None,
    progress=None,
    masks=None,
):
    """Decodes every record it can, and names the problem of every other.

    Never raises for a broken file: a file the decoders reject is dropped
    from the `tf.data` run (`ignore_errors`), then checked alone by
    `inspect_pair` to name its problem, so one pass finds every problem.

    Args:
        records: non-empty list of `Record`s.
        image_size, resize_mode, binary, keep_original_mask, cache_dir: as
            in `load_examples`.
        progress: a `tfseg.progress.Progress` to advance per example, or
            `None`. Defaults to `None`.
        masks: a `decoding.MaskReader` for records whose `trimap_path` is
            a described folder's mask, or `None` for the pets' trimaps.
            Defaults to `None`.

    Returns:
        `(examples, problems)`: `Examples` of the good records (`None` if
        none is), and `{name: problem}` of the others.
    """
    settings = [image_size, resize_mode, binary]
    if masks is not None:
        settings.append(masks.description.to_json())
    cache_path = _cache_path(cache_dir, records, settings)
    if cache_path and os.path.isfile(cache_path) and not keep_original_mask:
        return load_npz(cache_path), {}

    def load(record):
        if masks is None:
            example = decode_and_preprocess(
                tf.io.read_file(record["image_path"]),
                tf.io.read_file(record["trimap_path"]),
                image_size,
                resize_mode,
                binary,
                keep_original_mask,
            )
        else:
            image, size = decode_image(
                tf.io.read_file(record["image_path"]), max(image_shape(image_size))
            )
            mask, status = masks.graph(record["trimap_path"])
            example = preprocess_ids(
                image, size, mask, status, image_size, resize_mode, keep_original_mask
            )
        example.update(
            {key: record[key] for key in ("name", "breed_id", "species", "trimap_path")}
        )
        return example

    dataset = _records_dataset(records).map(load, AUTOTUNE).ignore_errors()
    examples, problems = read_examples(dataset, progress)
    decoded = set() if examples is None else set(examples.names.tolist())
    for record in records:
        named = masks is None and record.name in problems  # by its status
        if named or (record.name in decoded and record.name not in problems):
            continue
        if masks is None:
            found = inspect_pair(record.image_path, record.trimap_path)
        else:
            found = inspect_folder_pair(
                record.image_path, record.trimap_path, masks.description
            )
        problems[record.name] = (
            found
            or problems.get(record.name)
            or (
                "the pipeline could not read this pair, but a check of the files "
                "alone found no problem; run `tfseg verify-data` on the folder"
            )
        )
    if progress is not None:
        progress.done(f"{len(problems)} broken" if problems else "")
    if cache_path and examples is not None and not problems:
        export_npz(examples, cache_path)
    return examples, problems


def read_examples(dataset, progress=None):
    """Runs a decoding dataset once: `(Examples or None, {name: problem})`.

    The examples whose check failed are the problems; `Examples` is `None`
    when no example passed. `progress` is advanced per example; ending it
    (`done`) is the caller's, which may find more problems.
    """
    columns = {key: [] for key in ("image", "mask", "name", "breed_id", "species")}
    originals, problems = [], {}
    for example in dataset.prefetch(AUTOTUNE).as_numpy_iterator():
        if progress is not None:
            progress.advance()
        name = example["name"].decode()
        if example["status"] != STATUS_OK:
            where = example.get("trimap_path", b"").decode()
            problem = STATUS_MESSAGES[int(example["status"])]
            problems[name] = f"{problem} ({where})" if where else problem
            continue
        for key, column in columns.items():
            column.append(name if key == "name" else example[key])
        if "original_mask" in example:
            originals.append(example["original_mask"])
    if not columns["name"]:
        return None, problems
    examples = Examples(
        images=np.stack(columns["image"]),
        masks=np.stack(columns["mask"]),
        names=np.array(columns["name"]),
        breed_ids=np.array(columns["breed_id"], np.int32),
        species=np.array(columns["species"], np.int32),
        original_masks=originals or None,
    )
    return examples, problems


def check_problems(found, skip_bad):
    """One verdict over several splits' `(examples, problems)`.

    Args:
        found: `{split: (Examples or None, {name: problem})}`.
        skip_bad: keep going without the broken examples.

    Returns:
        `{split: Examples}`, each listing its problems in `skipped`.

    Raises:
        DataError: listing every problem of every split at once, unless
            `skip_bad`; or, with `skip_bad`, if a split has no example left.
    """
    problems = {
        name: problem
        for _, split_problems in found.values()
        for name, problem in split_problems.items()
    }
    if problems and not skip_bad:
        raise DataError(problems)
    empty = [split for split, (examples, _) in found.items() if examples is None]
    if empty:
        raise DataError(
            problems, f"No example of the {' or '.join(empty)} split could be loaded."
        )
    for examples, split_problems in found.values():
        examples.skipped.update(split_problems)
    return {split: examples for split, (examples, _) in found.items()}


def _cache_path(cache_dir, records, settings):
    """The cache file of `records` decoded with `settings`, keyed by both
    files of each record and their modification times and sizes, so that an
    edited image or relabelled mask is decoded again; `None` without
    `cache_dir`."""
    if cache_dir is None:
        return None
    key = json.dumps(
        [
            [*settings, NPZ_FORMAT_VERSION],  # a cache of another format: a miss
            [
                (r.name, r.image_path, r.trimap_path, *_stamp(r.image_path))
                + _stamp(r.trimap_path)
                for r in records
                if os.path.isfile(r.image_path)
            ],
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(os.fspath(cache_dir), f"examples_{digest}.npz")


def _stamp(path):
    """`(mtime in ns, size)` of a file, `(None, None)` where it is absent."""
    try:
        found = os.stat(path)
    except OSError:
        return None, None
    return found.st_mtime_ns, found.st_size


def make_dataset(
    examples,
    batch_size=DEFAULT_BATCH_SIZE,
    *,
    training=False,
    augmentation=None,
    seed=0,
    drop_remainder=None,
    deterministic=True,
    class_weights=None,
):
    """Serves `Examples` as batches of `(images, masks)` for `model.fit`.

    Images come out as float32 in 0..255 (models normalise inside), masks
    as uint8 `(batch, H, W, 1)`.

    Args:
        examples: `Examples` from `load_examples`, `load_oxford_pet` or
            `load_npz`.
        batch_size: examples per batch. Defaults to
            `tfseg.config.DEFAULT_BATCH_SIZE` (16).
        training: shuffle (reshuffled every epoch, seeded) and augment.
            Defaults to `False`.
        augmentation: an `Augmentation`, or `None` for no augmentation.
            Applied only when `training`. Defaults to `None`.
        seed: seed of the shuffle and the augmentation draws; the same seed
            gives the same batches. Defaults to `0`.
        drop_remainder: drop a last smaller batch. Defaults to `training`.
        deterministic: keep the order of parallel work fixed. Defaults to
            `True`.
        class_weights: one weight per class; batches then carry a third
            element, per-pixel `sample_weight`s (Keras's `class_weight` does
            not apply to masks; see `class_weights.class_weight_table`).
            Defaults to `None`.

    Returns:
        A `tf.data.Dataset`.

    Raises:
        ValueError: for class weights that do not fit the masks.
    """
    table = class_weight_table(class_weights, examples.masks)
    dataset = tf.data.Dataset.from_tensor_slices((examples.images, examples.masks))
    if training:
        dataset = dataset.shuffle(
            len(examples), seed=seed, reshuffle_each_iteration=True
        )
    dataset = dataset.batch(
        batch_size,
        drop_remainder=training if drop_remainder is None else drop_remainder,
    )
    if training and augmentation is not None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, seeds.batch(2))
        dataset = dataset.map(
            lambda batch, batch_seed: augmentation(*batch, batch_seed),
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
    else:
        dataset = dataset.map(
            lambda images, masks: (tf.cast(images, tf.float32), masks)
        )
    if table is not None:
        dataset = dataset.map(
            lambda images, masks: (images, masks, pixel_weights(tf_ops(), table, masks))
        )
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.with_options(options).prefetch(AUTOTUNE)
