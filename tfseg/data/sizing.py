"""The image size a run on a described folder takes when `--image-size` is
not given: its frames' own shape, at most `LONGEST_SIDE` px long; and the
windows it trains on when `--crop` is not given either.

The pets' default stays `config.DEFAULT_IMAGE_SIZE` (their photos differ in
shape, so they are stretched to a square). A folder of road scenes, cells
or tiles mostly holds frames of one shape; squashing 360 x 480 CamVid frames
to 128 x 128 loses what its thin classes (poles, signs, pedestrians) are
made of. Frames longer than `LONGEST_SIDE` are not scaled down to it but
kept at their shape (at most `WINDOWED_SIDE` px long), and the model trains
on random windows at most `LONGEST_SIDE` px long of them: a step costs what
it costs at the scaled-down size, and objects keep their size. On CamVid in
30 minutes on 2 CPU cores that scored 0.683 mean IoU over two seeds against
0.663 for the scaled-down frames, 0.391 against 0.344 over the four thin
classes (docs/BENCHMARKS.md, "CamVid"). Pure Python and PIL: only the image
headers are read.
"""

import dataclasses
import os

import numpy as np
from PIL import Image

from tfseg import sizes
from tfseg.config import format_size

# The longest side an automatic size keeps (larger frames are scaled down):
# the cost of an epoch grows with the pixels, and a time budget buys epochs.
# On 2 CPU cores a CamVid epoch at 352 x 480 took 162 s, 9 epochs in a
# 30-minute budget (docs/BENCHMARKS.md, "CamVid"); 224 x 320 has 42% of the
# pixels.
LONGEST_SIDE = 320
# The longest side of frames that the default windows are cut from: larger
# ones are scaled down to it, so a window holds at least half of a frame's
# length (and a tile of 4000 px is not decoded whole).
WINDOWED_SIDE = 2 * LONGEST_SIDE
# Every model of the registry but pix2pix takes multiples of 32.
MULTIPLE = 32
# Headers read to find the typical shape, spread over the split.
SAMPLED_IMAGES = 200


def automatic_image_size(pairs, multiple=MULTIPLE, longest=LONGEST_SIDE):
    """`(height, width)` for images like those of `pairs` (or a side, when
    square): their median shape, scaled down so that the longer side is at
    most `longest`, each side rounded down to a multiple of `multiple`.

    Args:
        pairs: `folders.Pair`s (the training split's).
        multiple: the sides' divisor. Defaults to `MULTIPLE` (32).
        longest: the longest side kept, or `None` for the images' own.
            Defaults to `LONGEST_SIDE` (320).

    Returns:
        An int (square) or `(height, width)`, as `TrainConfig.image_size`.

    Raises:
        ValueError: when no image header can be read.

    Example:

    >>> automatic_image_size(camvid_train_pairs)  # doctest: +SKIP
    (224, 320)
    """
    return scaled_size(median_shape(pairs), multiple, longest)


def median_shape(pairs):
    """`(height, width)`, the median of up to `SAMPLED_IMAGES` headers of
    `pairs`' images, spread over the list; `ValueError` when none reads."""
    pairs = list(pairs)
    step = max(len(pairs) // SAMPLED_IMAGES, 1)
    shapes = []
    for pair in pairs[::step]:
        try:
            with Image.open(pair.image_path) as image:
                shapes.append((image.height, image.width))
        except OSError:
            continue  # named by the pipeline's checks
    if not shapes:
        raise ValueError(
            f"No image of {os.path.dirname(pairs[0].image_path) if pairs else 'the '}"
            "split can be read to choose an image size; pass --image-size."
        )
    return tuple(np.median(np.array(shapes, np.float64), axis=0))


def scaled_size(shape, multiple=MULTIPLE, longest=LONGEST_SIDE):
    """`shape` scaled down to at most `longest` px long (`None`: kept), each
    side rounded down to a multiple of `multiple`; a side when square."""
    height, width = shape
    scale = 1.0 if longest is None else min(1.0, longest / max(height, width))
    sides = [
        max(multiple, int(side * scale) // multiple * multiple)
        for side in (height, width)
    ]
    return sides[0] if sides[0] == sides[1] else tuple(sides)


def finds_size(config):
    """Whether `with_automatic_size` finds `config`'s size from its frames:
    a described folder (not the pets, not exported splits)."""
    return bool(config.description and config.data_dir)


def with_automatic_size(config, report=print, windows=False):
    """`config` with `automatic_image_size` of its training split, for a
    described folder (`config.description` and `config.data_dir`); other
    configs are returned as they are. Call it when `--image-size` was not
    given.

    Args:
        config: a `TrainConfig`.
        report: where the sentence on the size goes. Defaults to `print`.
        windows: whether to train on windows where `--crop` was not given
            (`modeling.takes_default_windows`). Frames longer than
            `LONGEST_SIDE` are then kept at their shape, at most
            `WINDOWED_SIDE` px long, and `crop` is set to the size they
            would have been scaled down to. Defaults to `False`.

    With `--crop`, the size is the frames' own (sides rounded down to
    multiples of `MULTIPLE`): the windows are cut at full resolution.
    """
    if not finds_size(config):
        return config
    from tfseg.data.dataset import DatasetDescription
    from tfseg.data.described import assign_splits
    from tfseg.data.folders import find_layout

    description = DatasetDescription.from_dict(config.description)
    layout = find_layout(config.data_dir, description.splits, skip_bad=True)
    pairs = assign_splits(layout, config.val_fraction, config.seed, ("train",))
    shape = median_shape(pairs[0]["train"])
    crop = config.crop
    longest = None if crop else LONGEST_SIDE
    size = scaled_size(shape, longest=longest)
    how = f"at most {longest} px long" if longest else "their own"
    if windows and not crop:
        frames = scaled_size(shape, longest=WINDOWED_SIDE)
        if sizes.image_shape(frames) != sizes.image_shape(size):
            size, crop, how = frames, size, f"at most {WINDOWED_SIDE} px long"
    said = (
        f"image size: {format_size(size)}, the training images' shape "
        f"({how}, sides multiples of {MULTIPLE})"
    )
    if crop and not config.crop:
        said += (
            f"; training on random {format_size(crop)} windows of it, which "
            "keeps objects at their size: --crop none for whole images, "
            "--image-size for another size"
        )
    else:
        cut = f", cut into --crop {format_size(crop)} windows" if crop else ""
        said += f"{cut}; pass --image-size to choose another"
    report(said)
    return dataclasses.replace(config, image_size=size, crop=crop)
