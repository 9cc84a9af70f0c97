"""Oxford-IIIT Pet from TensorFlow Datasets or from a local folder, as `Examples`.

Either way every requested split is decoded before any problem is reported,
so a damaged copy is named in one report (`pipeline.check_problems`), not found one
round of fixes at a time. Without a folder, TensorFlow Datasets provides the
data: it downloads the official archives on first use, so before it tries,
`prepare_tfds` checks for a prepared copy and, when there is none, whether
the download host answers at all, and fails within seconds when it does not
(TFDS itself retries for minutes).
"""

import socket
import threading
import urllib.parse
import urllib.request

import tensorflow as tf

from tfseg.config import DEFAULT_IMAGE_SIZE
from tfseg.config import SPLITS
from tfseg.data import pipeline
from tfseg.data.dataset import DataError
from tfseg.data.layout import OxfordPetFolder
from tfseg.data.layout import check_splits
from tfseg.data.layout import stratified_split
from tfseg.progress import Progress

TFDS_NAME = "oxford_iiit_pet"
OFFICIAL_PAGE = "https://www.robots.ox.ac.uk/~vgg/data/pets/"
# Seconds the download host has to accept a connection (name lookup
# included) before TFDS is taken to be offline.
CONNECT_TIMEOUT = 3.0


def load_oxford_pet(
    data_dir=None,
    image_size=DEFAULT_IMAGE_SIZE,
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
    progress=False,
):
    """Loads train, validation and test splits of Oxford-IIIT Pet.

    Without `data_dir` the data comes from TensorFlow Datasets
    (`oxford_iiit_pet`: train is the official trainval list, 3,680 images;
    test 3,669), downloaded on first use. With `data_dir`, from a folder in
    the official archive layout (see `OxfordPetFolder`). Either way the
    validation split is carved from train, stratified by breed, with `seed`.
    Only the requested splits are decoded.

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
        skip_bad: leave broken examples out and list them in each split's
            `Examples.skipped` instead of raising. Defaults to `False`.
        keep_original_mask: keep original-resolution masks (test split
            only) for full-resolution scores. Defaults to `False`.
        cache_dir: folder for `.npz` caches of decoded splits. Defaults to
            `None` (memory only).
        tfds_data_dir: where TFDS keeps its data. Defaults to `None`
            (`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
        progress: show progress while decoding each split. Defaults to
            `False`.

    Returns:
        `{split: Examples}` for the requested splits.

    Raises:
        ValueError: for a folder that is not a dataset, an unknown split or
            an empty one. `DataError` (a `ValueError`) names every broken
            file of every requested split at once.
        RuntimeError: if TFDS has no local copy and cannot download one:
            use `data_dir`.
    """
    check_splits(splits)
    pipeline.check_resize_mode(resize_mode)  # the TFDS path resizes too
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"`max_examples` must be positive; received {max_examples!r}.")
    options = dict(
        image_size=image_size,
        resize_mode=resize_mode,
        binary=binary,
        cache_dir=cache_dir,
    )
    if data_dir is None:
        builder = prepare_tfds(tfds_data_dir)
        found = {}
        if {"train", "val"} & set(splits):
            # TFDS's train split is the official trainval list: decoded
            # whole, then carved into train and val.
            found["train"] = _tfds_split(
                builder, "train", None, False, progress, options
            )
        if "test" in splits:
            found["test"] = _tfds_split(
                builder, "test", max_examples, keep_original_mask, progress, options
            )
        settled = pipeline.check_problems(found, skip_bad)
        return _carve_validation(settled, splits, val_fraction, seed, max_examples)
    folder = OxfordPetFolder(data_dir)
    records, missing = folder.splits(
        val_fraction=val_fraction, seed=seed, wanted=splits
    )
    found = {}
    for split in splits:
        chosen = records[split][:max_examples]
        if not chosen and not missing[split]:
            raise ValueError(
                f"The {split!r} split of {data_dir!r} is empty. Check its split "
                "lists, or lower val_fraction."
            )
        examples, problems = None, {}
        if chosen:
            examples, problems = pipeline.decode_records(
                chosen,
                keep_original_mask=keep_original_mask and split == "test",
                progress=Progress(len(chosen), f"decoding {split}", enabled=progress),
                **options,
            )
        found[split] = (examples, {**missing[split], **problems})
    return pipeline.check_problems(found, skip_bad)


def _carve_validation(settled, splits, val_fraction, seed, max_examples):
    """The requested splits, train and val carved from TFDS's trainval."""
    if "train" not in settled:
        return settled
    trainval = settled.pop("train")
    entries = [
        (name, breed, 0)
        for name, breed in zip(trainval.names.tolist(), trainval.breed_ids.tolist())
    ]
    train_entries, val_entries = stratified_split(entries, val_fraction, seed)
    index = {name: i for i, name in enumerate(trainval.names.tolist())}
    # Broken trainval examples are listed once: with train, as in the folder
    # source, or with val when train is not requested.
    owner = "train" if "train" in splits else "val"
    for split, chosen in (("train", train_entries), ("val", val_entries)):
        if split in splits:
            indices = [index[entry[0]] for entry in chosen][:max_examples]
            settled[split] = trainval.take(indices)
            if split != owner:
                settled[split].skipped = {}
    return {split: settled[split] for split in splits}


def _tfds_split(builder, split, max_examples, keep_original_mask, progress, options):
    """`(Examples or None, problems)` of one TFDS split."""
    import tensorflow_datasets as tfds

    try:
        dataset = builder.as_dataset(
            split=split,
            shuffle_files=False,
            # Keep the encoded bytes: the pipeline's own decoder downscales
            # JPEGs while decoding, and names files it cannot decode.
            decoders={
                "image": tfds.decode.SkipDecoding(),
                "segmentation_mask": tfds.decode.SkipDecoding(),
            },
        )
    except Exception as error:
        raise RuntimeError(
            f"TensorFlow Datasets cannot read its copy of {TFDS_NAME!r} in "
            f"{builder.data_dir!r} ({_reason(error)}). Delete that folder to "
            "download it again, or pass --data-dir DIR (data_dir=DIR) with the "
            "official images.tar.gz and annotations.tar.gz extracted into DIR."
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

    total = int(dataset.cardinality())
    dataset = dataset.map(load, num_parallel_calls=pipeline.AUTOTUNE)
    counter = Progress(
        total if total >= 0 else None, f"decoding {split}", enabled=progress
    )
    try:
        examples, problems = pipeline.read_examples(dataset, counter)
    except tf.errors.OpError as error:
        raise DataError(
            {f"TFDS {TFDS_NAME} {split}": f"cannot be decoded ({error.message[:200]})"},
            f"The TFDS copy in {builder.data_dir!r} may be damaged: delete it to "
            "download it again.",
        ) from error
    counter.done(f"{len(problems)} broken" if problems else "")
    return examples, problems


def prepare_tfds(tfds_data_dir=None):
    """The TFDS builder of Oxford-IIIT Pet, its data downloaded and prepared.

    Before TFDS downloads (and retries for minutes when offline), checks
    that there is a prepared copy in the TFDS data folder or that the hosts
    of the download answer (`check_connection`).

    Args:
        tfds_data_dir: the TFDS data folder. Defaults to `None`
            (`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`).

    Raises:
        RuntimeError: when TFDS has no copy and cannot download one, naming
            the folder it looked in and how to go on without it.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(TFDS_NAME, data_dir=tfds_data_dir)
    if _download_needed(builder):
        unreachable = {}
        for url in sorted(builder.url_infos or {}):
            address = _address(url)
            if address not in unreachable:
                unreachable[address] = check_connection(url)
        unreachable = {a: reason for a, reason in unreachable.items() if reason}
        if unreachable:
            hosts = "; ".join(
                f"{host}:{port} ({reason})"
                for (host, port), reason in unreachable.items()
            )
            raise RuntimeError(
                f"No data folder was given (--data-dir), and TensorFlow Datasets "
                f"has no prepared copy of {TFDS_NAME!r} in {builder.data_dir!r} "
                f"and cannot download one: unreachable {hosts}. Either pass "
                "--data-dir DIR (data_dir=DIR) with the official images.tar.gz "
                f"and annotations.tar.gz from {OFFICIAL_PAGE} extracted into "
                "DIR, or run once with network access, so that TFDS downloads "
                f"them (about 800 MB) and prepares its copy in "
                f"{str(builder.data_dir_root)!r} (set $TFDS_DATA_DIR for "
                "another folder)."
            )
    try:
        builder.download_and_prepare()
    except Exception as error:
        raise RuntimeError(
            f"TensorFlow Datasets could not provide {TFDS_NAME!r} "
            f"({_reason(error)}). Without network access TFDS cannot download "
            "it: pass --data-dir DIR (data_dir=DIR) with a local copy of the "
            "official images.tar.gz and annotations.tar.gz extracted into DIR."
        ) from error
    return builder


def _download_needed(builder):
    """Whether `download_and_prepare` would download: no prepared copy (the
    folder TFDS itself checks) and TFDS's real preparation in place."""
    if builder.data_path.exists():
        return False
    # `tfds.testing.mock_data` replaces the preparation by one that
    # downloads nothing and serves mock examples: nothing to reach then.
    prepare = type(builder).download_and_prepare
    return not getattr(prepare, "__module__", "").startswith(
        "tensorflow_datasets.testing"
    )


def _address(url):
    """`(host, port)` a connection to `url` goes to, through a proxy if set."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def check_connection(url, timeout=CONNECT_TIMEOUT):
    """Whether a TCP connection for `url` opens within `timeout` seconds.

    The name lookup counts against `timeout` too (it runs on a thread that
    is abandoned when late), so this returns within `timeout` seconds.

    Returns:
        `None` if the host (or the proxy for it) accepted a connection,
        else the reason it did not, e.g. `"no answer within 3 s"`.
    """
    address = _address(url)
    outcome = []

    def connect():
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(_reason(error))

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def _reason(error):
    return f"{type(error).__name__}: {str(error)[:300]}"
