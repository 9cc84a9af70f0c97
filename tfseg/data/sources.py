"""Oxford-IIIT Pet from TensorFlow Datasets or from a local folder, as `Examples`."""

import tensorflow as tf

from tfseg.data import pipeline
from tfseg.data.layout import OxfordPetFolder
from tfseg.data.layout import stratified_split

SPLITS = ("train", "val", "test")
TFDS_NAME = "oxford_iiit_pet"


def load_oxford_pet(
    data_dir=None,
    image_size=128,
    *,
    splits=SPLITS,
    val_fraction=0.1,
    seed=0,
    binary=False,
    resize_mode="stretch",
    max_examples=None,
    skip_bad=False,
    keep_original_mask=False,
    cache_dir=None,
    tfds_data_dir=None,
):
    """Loads train, validation and test splits of Oxford-IIIT Pet.

    Without `data_dir` the data comes from TensorFlow Datasets
    (`oxford_iiit_pet`: train is the official trainval list, 3,680 images;
    test 3,669), downloaded on first use. With `data_dir`, from a folder in
    the official archive layout (see `OxfordPetFolder`). Either way the
    validation split is carved from train, stratified by breed, with `seed`.

    Args:
        data_dir: local dataset folder, or `None` for TFDS. Defaults to
            `None`.
        image_size: side of the square examples. Defaults to `128`.
        splits: which of "train", "val", "test" to load. Defaults to all.
        val_fraction: share of trainval held out for validation. Defaults
            to `0.1`.
        seed: seed of the validation split. Defaults to `0`.
        binary: pet and border vs background. Defaults to `False`.
        resize_mode: `"stretch"`, `"crop"` or `"pad"`. Defaults to
            `"stretch"`.
        max_examples: at most this many examples per split, for quick runs.
            Defaults to `None` (all).
        skip_bad: leave broken examples out and report them instead of
            raising. Defaults to `False`.
        keep_original_mask: keep original-resolution masks (test split
            only) for full-resolution scores. Defaults to `False`.
        cache_dir: folder for `.npz` caches of decoded splits. Defaults to
            `None` (memory only).
        tfds_data_dir: where TFDS keeps its data. Defaults to `None`
            (`~/tensorflow_datasets`).

    Returns:
        `{split: Examples}` for the requested splits.

    Raises:
        ValueError: for a folder that is not a dataset, an unknown split or
            an empty one; `DataError` names broken files.
        RuntimeError: if TFDS cannot download (offline): use `data_dir`.
    """
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"Unknown split(s) {unknown}; choose from {list(SPLITS)}.")
    pipeline.check_resize_mode(resize_mode)  # the TFDS path resizes too
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"`max_examples` must be positive; received {max_examples!r}.")
    options = dict(
        image_size=image_size,
        resize_mode=resize_mode,
        binary=binary,
        skip_bad=skip_bad,
        cache_dir=cache_dir,
    )
    if data_dir is None:
        return _load_tfds(
            splits,
            val_fraction,
            seed,
            max_examples,
            keep_original_mask,
            tfds_data_dir,
            options,
        )
    folder = OxfordPetFolder(data_dir)
    records, missing = folder.splits(val_fraction=val_fraction, seed=seed)
    all_missing = {name: p for split in splits for name, p in missing[split].items()}
    if all_missing and not skip_bad:
        raise pipeline.DataError(all_missing)
    result = {}
    for split in splits:
        chosen = records[split][:max_examples]
        if not chosen:
            raise ValueError(
                f"The {split!r} split of {data_dir!r} is empty. Check its split "
                "lists, or lower val_fraction."
            )
        examples = pipeline.load_examples(
            chosen, keep_original_mask=keep_original_mask and split == "test", **options
        )
        examples.skipped.update(missing[split])
        result[split] = examples
    return result


def _load_tfds(
    splits, val_fraction, seed, max_examples, keep_original_mask, tfds_data_dir, options
):
    result = {}
    if {"train", "val"} & set(splits):
        trainval = _tfds_examples("train", None, False, tfds_data_dir, options)
        entries = [
            (name, breed, 0)
            for name, breed in zip(trainval.names.tolist(), trainval.breed_ids.tolist())
        ]
        train_entries, val_entries = stratified_split(entries, val_fraction, seed)
        index = {name: i for i, name in enumerate(trainval.names.tolist())}
        for split, chosen in (("train", train_entries), ("val", val_entries)):
            if split in splits:
                indices = [index[entry[0]] for entry in chosen][:max_examples]
                result[split] = trainval.take(indices)
    if "test" in splits:
        result["test"] = _tfds_examples(
            "test", max_examples, keep_original_mask, tfds_data_dir, options
        )
    return result


def _tfds_examples(split, max_examples, keep_original_mask, tfds_data_dir, options):
    import tensorflow_datasets as tfds  # noqa: PLC0415 - only for this source

    try:
        dataset = tfds.load(
            TFDS_NAME,
            split=split,
            data_dir=tfds_data_dir,
            shuffle_files=False,
            # Keep the encoded bytes: the pipeline's own decoder downscales
            # JPEGs while decoding, and names files it cannot decode.
            decoders={
                "image": tfds.decode.SkipDecoding(),
                "segmentation_mask": tfds.decode.SkipDecoding(),
            },
        )
    except Exception as error:  # noqa: BLE001 - re-raised with guidance
        reason = f"{type(error).__name__}: {str(error)[:300]}"
        raise RuntimeError(
            f"TensorFlow Datasets could not provide {TFDS_NAME!r} ({reason}). "
            "Without network "
            "access TFDS cannot download it: pass --data-dir DIR (data_dir=DIR) "
            "with a local copy of the official images.tar.gz and "
            "annotations.tar.gz extracted into DIR."
        ) from error
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    size = options["image_size"]

    def load(example):
        decoded = pipeline.decode_and_preprocess(
            example["image"],
            example["segmentation_mask"],
            size,
            options["resize_mode"],
            options["binary"],
            keep_original_mask,
        )
        decoded["name"] = tf.strings.regex_replace(
            example["file_name"], r"\.[^.]*$", ""
        )
        decoded["breed_id"] = tf.cast(example["label"], tf.int32)
        decoded["species"] = tf.cast(example["species"], tf.int32)
        return decoded

    dataset = dataset.map(load, num_parallel_calls=pipeline.AUTOTUNE)
    try:
        return pipeline.collect(dataset, options["skip_bad"])
    except tf.errors.OpError as error:
        raise pipeline.DataError(
            {f"TFDS {TFDS_NAME} {split}": f"cannot be decoded ({error.message[:200]})"},
            "The TFDS copy may be damaged: delete it to download it again.",
        ) from error
