"""Any folder of images and masks, described (`described.py`), as `Examples`.

The pairs come from `folders.find_layout` and `described.assign_splits`;
each split is decoded by the pets' pipeline (`pipeline.decode_records`),
its masks read through the description (`decoding.MaskReader`): void
values become `VOID`, and a value the description does not declare is a
problem named with its file and pixels. Every problem of every requested
split is reported at once (`pipeline.check_problems`).
"""

from tfseg.data import pipeline
from tfseg.data.decoding import MaskReader
from tfseg.data.described import assign_splits
from tfseg.data.folders import find_layout
from tfseg.data.layout import Record
from tfseg.progress import Progress


def load_folder(
    data_dir,
    description,
    image_size,
    *,
    splits,
    val_fraction=0.1,
    seed=0,
    resize_mode="stretch",
    max_examples=None,
    skip_bad=False,
    keep_original_mask=False,
    cache_dir=None,
    progress=False,
    report=print,
):
    """The requested splits of a described folder.

    Args:
        data_dir: the dataset folder (any layout `find_layout` knows but
            the pets').
        description: its `DatasetDescription`.
        image_size: a side or `(height, width)`.
        splits, val_fraction, seed, resize_mode, max_examples, skip_bad,
        keep_original_mask, cache_dir, progress: as in
            `sources.load_oxford_pet`.
        report: where the layout's notes go (`print` unless `progress` is
            off). Defaults to `print`.

    Returns:
        `{split: Examples}`; masks hold class ids and `VOID`. `val` is
        absent where there is none (`--val-fraction 0`).

    Raises:
        ValueError: for a folder in no known layout or a split it lacks.
        DataError: naming every unpaired, refused or broken file at once,
            unless `skip_bad`.
    """
    layout = find_layout(data_dir, description.splits, skip_bad)
    chosen, notes = assign_splits(layout, val_fraction, seed, wanted=splits)
    if progress:
        for note in (*layout.notes, *notes):
            report(note)
    reader = MaskReader(description)
    found = {}
    for index, split in enumerate(splits):
        records = [
            Record(pair.name, pair.image_path, pair.mask_path)
            for pair in chosen[split][:max_examples]
        ]
        if not records and split == "val":
            continue  # --val-fraction 0: no validation split
        if not records:
            raise ValueError(f"The {split!r} split of {data_dir!r} is empty.")
        examples, problems = pipeline.decode_records(
            records,
            image_size,
            resize_mode=resize_mode,
            keep_original_mask=keep_original_mask and split == "test",
            cache_dir=cache_dir,
            progress=Progress(len(records), f"decoding {split}", enabled=progress),
            masks=reader,
        )
        if index == 0:  # the layout's problems, once
            problems = {**layout.problems, **problems}
        found[split] = (examples, problems)
    return pipeline.check_problems(found, skip_bad)
