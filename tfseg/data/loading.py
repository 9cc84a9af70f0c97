"""A run's data from its `TrainConfig`: the one entry the training code calls.

- `load_splits(config, splits)`: `{split: Examples}` from the configured
  source: `--data-npz` exports (NumPy only, no TensorFlow), `--synthetic N`
  pets (written once under the output folder), a `--data-dir` folder, or
  else TensorFlow Datasets.
- `make_batches(config, examples, training=...)`: the batches `fit` reads,
  for the Keras backend in use.
- `export_splits(config, splits, out)`: `tfseg export-data`.

No TensorFlow at import: the `.npz` path runs where it is not installed, and
the image sources import it when they are used.
"""

import functools
import importlib.util
import os
import shutil

import keras
import numpy as np

from tfseg.config import MEDIAN_FREQUENCY
from tfseg.config import SPLITS
from tfseg.config import format_size
from tfseg.data.arrays import export_npz
from tfseg.data.arrays import load_npz
from tfseg.data.arrays import split_path
from tfseg.data.augment import Augmentation
from tfseg.data.batches import ArrayBatches
from tfseg.data.class_weights import median_frequency_weights
from tfseg.data.dataset import DatasetDescription
from tfseg.data.dataset import write_dataset_json
from tfseg.data.described import describe_data
from tfseg.data.described import description_path
from tfseg.data.layout import check_splits
from tfseg.data.synthetic import write_synthetic_pets
from tfseg.files import scratch_dir


def load_splits(config, splits=SPLITS, progress=True):
    """The requested splits of the configured source, and only those.

    - `config.data_npz`: the files `export-data --out PATH` wrote
      (`<stem>_<split>.npz`), checked against the config's image size and
      classes; a missing `val` file means no validation split.
    - `config.synthetic = N`: N synthetic pets, written once to
      `<output_dir>/.synthetic_<N>_<seed>` and reused.
    - `config.data_dir`: Oxford-IIIT Pet's archive layout, or any folder
      `tfseg.data.folders.find_layout` knows, read through its description.
    - none of them: TensorFlow Datasets.

    A config without `description` is described first (`describe_data`:
    a folder's dataset.json or mask values, an export's
    `<stem>_dataset.json`), as a run's start does. From images (folder or
    TFDS) the test split also keeps each mask at its original resolution,
    for full-resolution scores.

    Args:
        config: a `tfseg.config.TrainConfig`.
        splits: which of "train", "val", "test" to load. Defaults to all.
        progress: show progress while decoding each split, and print one
            `skipped NAME: problem` line per file `config.skip_bad` left
            out. Defaults to `True`.

    Returns:
        `{split: Examples}` (`val` may be absent from `.npz` exports).

    Raises:
        ValueError: for a source that cannot be read, saying why and how to
            fix it (`DataError`, a `ValueError`, names every broken file).
        RuntimeError: when TFDS has no local copy and cannot download one.
    """
    splits = list(splits)
    check_splits(splits)
    if config.data_npz:
        return _load_npz_splits(_described(config), splits)
    return _load_images(config, splits, progress=progress, keep_original_mask=True)


def _described(config):
    """`config` with the description of its data, where it needs one and
    has none (`describe_data`); else `config` itself."""
    if config.description is None and (config.data_dir or config.data_npz):
        return describe_data(config)
    return config


def check_readable(config):
    """Raises `ValueError` where `config`'s source is images (not `.npz`
    splits) and TensorFlow, which decodes them, is not installed: at once,
    before a model is built for data that cannot be read."""
    if config.data_npz or importlib.util.find_spec("tensorflow") is not None:
        return
    raise ValueError(
        "Reading images needs TensorFlow, which is not installed here. "
        "Install it (pip install tensorflow), or export the splits where "
        "it is: `python -m tfseg export-data --data-dir DIR --image-size "
        f"{config.image_size} --out pets.npz`, copy pets_*.npz here and "
        "train with --data-npz pets.npz."
    )


def _load_images(
    config, splits, *, progress, keep_original_mask, resize_mode="stretch"
):
    check_readable(config)
    options = dict(
        splits=splits,
        val_fraction=config.val_fraction,
        seed=config.seed,
        max_examples=config.max_examples,
        skip_bad=config.skip_bad,
        keep_original_mask=keep_original_mask,
        cache_dir=config.cache_dir,
        resize_mode=resize_mode,
        progress=progress,
    )
    config = _described(config)  # a folder other than the pets'
    if config.description and config.data_dir:
        from tfseg.data.folder_source import load_folder

        description = DatasetDescription.from_dict(config.description)
        loaded = load_folder(config.data_dir, description, config.image_size, **options)
    else:
        from tfseg.data.sources import load_oxford_pet

        data_dir = synthetic_folder(config) if config.synthetic else config.data_dir
        loaded = load_oxford_pet(
            data_dir, config.image_size, binary=config.binary, **options
        )
    if progress:
        for examples in loaded.values():
            for name, problem in sorted(examples.skipped.items()):
                print(f"skipped {name}: {problem}", flush=True)
        if "train" in loaded:
            warn_absent_classes(config, loaded["train"])
    return loaded


def warn_absent_classes(config, train):
    """Prints a warning naming the classes no training mask holds (they are
    still scored wherever the test masks hold them)."""
    counts = np.bincount(train.masks.ravel(), minlength=256)[: config.num_classes]
    absent = [name for name, count in zip(config.class_names, counts) if not count]
    if absent:
        print(
            f"warning: no training mask holds {', '.join(map(repr, absent))}: "
            "the model cannot learn "
            + ("it" if len(absent) == 1 else "them")
            + "; scored wherever the test masks hold "
            + ("it" if len(absent) == 1 else "them")
            + ". Move images with it into the training split.",
            flush=True,
        )


def synthetic_folder(config):
    """`<output_dir>/.synthetic_<N>_<seed>`, written on first use.

    Written into a scratch folder and renamed, so that workers of one
    cluster, starting together, never read a half-written folder.
    """
    folder = os.path.join(
        config.output_dir, f".synthetic_{config.synthetic}_{config.seed}"
    )
    if os.path.isdir(folder):
        return folder
    scratch = scratch_dir(config.output_dir, ".writing_")
    try:
        write_synthetic_pets(scratch, config.synthetic, seed=config.seed)
        os.rename(scratch, folder)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not os.path.isdir(folder):
            raise
        # Another worker renamed its copy first: the same data.
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return folder


def _load_npz_splits(config, splits):
    """`{split: Examples}` from `export-data` files: no TensorFlow needed.

    `config.data_npz` is the `--out` path given to `export-data`; the splits
    are next to it as `<stem>_train.npz`, `<stem>_val.npz` (optional) and
    `<stem>_test.npz`.
    """
    paths = {split: split_path(config.data_npz, split) for split in splits}
    missing = [
        path
        for split, path in paths.items()
        if split != "val" and not os.path.isfile(path)
    ]
    if missing:
        looked = ", ".join(
            repr(path) + (" (optional)" if split == "val" else "")
            for split, path in paths.items()
        )
        raise ValueError(
            f"--data-npz {config.data_npz!r}: no {' or '.join(map(repr, missing))} "
            f"(looked for {looked}). Pass the --out path given to `python -m "
            "tfseg export-data`, which writes <stem>_<split>.npz for each split"
            + _one_split_hint(config.data_npz)
            + "."
        )
    loaded = {}
    for split, path in paths.items():
        if split == "val" and not os.path.isfile(path):
            continue
        examples = load_npz(path)
        size = tuple(examples.images.shape[1:3])
        if size != config.image_shape:
            held = format_size(size)
            raise ValueError(
                f"{path!r} holds {size[0]}x{size[1]} images but --image-size "
                f"is {format_size(config.image_size)}. Pass --image-size {held}, "
                f"or export again with --image-size {format_size(config.image_size)}."
            )
        classes = examples.masks[examples.masks != config.ignore_class]
        if classes.size and classes.max() >= config.num_classes:
            kind = "binary" if config.binary else f"{config.num_classes}-class"
            raise ValueError(
                f"{path!r} holds class {classes.max()}, but a {kind} run has "
                f"classes 0..{config.num_classes - 1}. Export with the same "
                "--binary and --dataset settings as the training."
            )
        if config.max_examples:
            examples = examples.take(range(min(config.max_examples, len(examples))))
        loaded[split] = examples
    return loaded


def _one_split_hint(data_npz):
    """Where `data_npz` is one split's own file, the path to pass instead."""
    stem, extension = os.path.splitext(data_npz)
    for split in SPLITS:
        if stem.endswith(f"_{split}") and os.path.isfile(data_npz):
            whole = stem[: -len(split) - 1] + extension
            return f": {data_npz!r} is the {split} split's own file; pass {whole!r}"
    return ""


def make_batches(
    config, examples, *, training, replicas=1, initial_epoch=0, shards=1, shard_index=0
):
    """The batches `fit` reads from one split.

    tf.data (`make_dataset`) on the TensorFlow backend, or whenever the
    examples come from images (TensorFlow is there then). With `--data-npz`
    on another backend, `ArrayBatches`, which needs no TensorFlow (and on
    JAX augments on the device). On the TensorFlow backend tf.data is the
    faster of the two (4.8 against 5.8 s an epoch in docs/BENCHMARKS.md), so
    it serves `.npz` splits there too.

    Args:
        config: a `tfseg.config.TrainConfig` (batch size, augmentation,
            class weights, seed).
        examples: `Examples` of the split, or `None` (no such split).
        training: the training split (shuffled, augmented, class-weighted,
            whole batches only) or not (validation, in order).
        replicas: devices of this host a batch is split over. With more
            than one, validation keeps whole batches only, since Keras
            cannot split a smaller last batch unevenly (the test report
            afterwards scores every image). Defaults to `1`.
        initial_epoch: epochs already done (a resumed run), so that
            `ArrayBatches` serves the orders and draws of the epochs to come.
            Defaults to `0`.
        shards: hosts training together (`--hosts`). Their batches come
            from `ArrayBatches` whatever the source (a resumed run then
            continues the shuffles): of the training split, each host serves
            its `shard_index`-th slice of each global batch; of validation,
            every host serves the whole split, so the scores are over the
            whole split. Defaults to `1`.
        shard_index: this host's slice. Defaults to `0`.

    Returns:
        A `tf.data.Dataset` or an `ArrayBatches`; `None` for a validation
        split that is absent or smaller than what one batch needs.

    Raises:
        ValueError: for a training split smaller than one batch (no
            training step), naming the fix.
    """
    if training:
        _check_training_split(config, len(examples), replicas, shards)
    elif examples is None or len(examples) < (config.batch_size if replicas > 1 else 1):
        return None
    if shards > 1 or (config.data_npz and keras.backend.backend() != "tensorflow"):
        make = functools.partial(ArrayBatches, initial_epoch=initial_epoch)
        if training:
            make = functools.partial(make, num_shards=shards, shard_index=shard_index)
    else:
        from tfseg.data.pipeline import make_dataset as make
    if not training:
        if config.crop:  # the model is built at the window's size
            examples = examples.center_crop(config.crop_shape)
        return make(examples, config.batch_size, drop_remainder=replicas > 1)
    return make(
        examples,
        config.batch_size,
        training=True,
        augmentation=training_augmentation(config),
        seed=config.seed,
        class_weights=training_class_weights(config, examples),
    )


def training_augmentation(config):
    """The `Augmentation` of a run's training batches: tfseg's (random
    `--crop` windows among its draws), random windows alone with
    `--no-augment --crop`, or `None`."""
    if config.augment:
        return Augmentation(crop=config.crop_shape)
    return Augmentation.crop_only(config.crop_shape) if config.crop else None


def training_class_weights(config, train):
    """The class weights of a run: `--class-weights`, or SegNet's median
    frequency balancing computed from the training split's masks."""
    if config.class_weights != MEDIAN_FREQUENCY:
        return config.class_weights
    return median_frequency_weights(train.masks, config.num_classes)


def _check_training_split(config, count, replicas, shards=1):
    """Raises `ValueError` when `count` examples make no whole (global) batch."""
    if count >= config.batch_size * shards:
        return
    if shards > 1:
        raise ValueError(
            f"The training split holds {count} example(s), fewer than one "
            f"global batch of {config.batch_size * shards} (--batch-size "
            f"{config.batch_size} on each of {shards} hosts): zero training "
            f"steps. Lower --batch-size to {count // shards} or less, or use "
            "more data."
        )
    fixes = []
    largest = count // replicas * replicas
    if largest:
        fixes.append(
            f"Lower --batch-size to {largest} or less"
            + (f" (a multiple of the {replicas} replicas)" if replicas > 1 else "")
        )
    if config.max_examples is not None and config.max_examples < config.batch_size:
        more = f"raise --max-examples (now {config.max_examples})"
    else:
        more = "use more data (" + (
            f"a --synthetic larger than {config.synthetic}"
            if config.synthetic
            else "a folder with more training images"
        )
        more += ")"
    fixes.append(more if fixes else more[0].upper() + more[1:])
    raise ValueError(
        f"The training split holds {count} example(s), fewer than one batch of "
        f"{config.batch_size}: zero training steps. {', or '.join(fixes)}."
    )


def export_splits(config, splits, out, *, resize_mode="stretch"):
    """Decodes the configured image source and writes each split to `.npz`.

    What `tfseg export-data` runs: `<stem>_<split>.npz` per split, one
    split or several (`arrays.split_path`), the files `--data-npz out`
    reads on machines without TensorFlow.

    Args:
        config: a `tfseg.config.TrainConfig` naming an image source.
        splits: which of "train", "val", "test" to write.
        out: the output path.
        resize_mode: `"stretch"`, `"crop"` or `"pad"`. Defaults to
            `"stretch"`.

    Returns:
        `{split: path written}`.
    """
    splits = list(splits)
    check_splits(splits)
    if config.data_npz:
        raise ValueError(
            "export-data reads images (--data-dir DIR, or TFDS without it); "
            f"{config.data_npz!r} is an export already."
        )
    loaded = _load_images(
        config, splits, progress=True, keep_original_mask=False, resize_mode=resize_mode
    )
    written = {}
    for split, examples in loaded.items():
        path = split_path(out, split)
        export_npz(examples, path)
        print(f"{split}: {len(examples)} examples -> {path}")
        written[split] = os.fspath(path)
    if config.description:  # the classes, for --data-npz
        path = description_path(out)
        write_dataset_json(path, DatasetDescription.from_dict(config.description))
        print(f"classes and void: {path}")
        written["dataset"] = path
    return written
