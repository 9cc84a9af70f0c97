"""Decoding one example: an image file and its trimap, checked, resized and
turned into class ids, inside the tf.data graph (`preprocess`), and the
same checks per file, outside it, to name what is broken (`inspect_pair`).

The JPEG decoder's DCT-domain downscaling (`ratio` 2, 4 or 8) cuts the cost
of decoding: a 500 px photo bound for 128 px is decoded at 250 px, then
resized by area averaging. Masks are resized with nearest neighbour only.
"""

import os
import re

import numpy as np
import tensorflow as tf

from tfseg.config import RESIZE_MODES
from tfseg.config import VOID
from tfseg.config import image_shape
from tfseg.data.dataset import DataError
from tfseg.data.folders import Pair
from tfseg.data.folders import inspect_masks
from tfseg.data.folders import read_mask

JPEG_RATIOS = (1, 2, 4, 8)

# Problems found inside the graph, by status code.
STATUS_OK = 0
STATUS_SIZE_MISMATCH = 1
STATUS_BAD_TRIMAP_VALUES = 2
STATUS_UNDECLARED = 3
STATUS_MESSAGES = {
    STATUS_SIZE_MISMATCH: "trimap size differs from the image size",
    STATUS_BAD_TRIMAP_VALUES: "trimap has values outside {1, 2, 3}",
    STATUS_UNDECLARED: "mask holds values its description does not declare",
}


def decode_image(contents, min_side=None):
    """Decodes JPEG, PNG, GIF or BMP bytes to uint8 RGB `(h, w, 3)`.

    Grayscale, RGBA, CMYK and palette images all come out as RGB; a GIF gives
    its first frame. Whatever the file name says, the bytes decide.

    Args:
        contents: scalar string tensor, the file's bytes.
        min_side: when set, a JPEG is decoded at 1/2, 1/4 or 1/8 scale
            (DCT-domain downscaling) as long as both sides stay at least
            `min_side` px. Defaults to `None` (full size).

    Returns:
        `(image, original_size)`: the decoded image and the `(height,
        width)` of the file at full size.
    """
    is_jpeg = tf.strings.substr(contents, 0, 3) == b"\xff\xd8\xff"

    def jpeg():
        size = tf.image.extract_jpeg_shape(contents)[:2]
        if min_side is None:
            branch = tf.constant(0)
        else:
            fits = [tf.reduce_min(size) >= ratio * min_side for ratio in JPEG_RATIOS]
            branch = tf.reduce_sum(tf.cast(tf.stack(fits[1:]), tf.int32))
        decoders = [
            lambda ratio=ratio: tf.io.decode_jpeg(contents, channels=3, ratio=ratio)
            for ratio in JPEG_RATIOS
        ]
        return tf.switch_case(branch, decoders), size

    def other():
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image, tf.shape(image)[:2]

    return tf.cond(is_jpeg, jpeg, other)


def resize_pair(image, mask, size, mode="stretch", pad_value=1):
    """Resizes an image and its mask (nearest neighbour) to `size`.

    Images shrink by area averaging, an antialiasing filter that costs half
    as much as antialiased bilinear resizing on CPUs, and grow bilinearly.

    Args:
        image: `(h, w, 3)` image, possibly decoded at a reduced scale.
        mask: `(H, W, 1)` class mask at the original scale.
        size: a side, or `(height, width)`.
        mode: `"stretch"` (ignore the aspect ratio), `"crop"` (scale to
            cover `size`, centre crop) or `"pad"` (scale to fit in `size`,
            centre padding: image 0, mask `pad_value`). Defaults to
            `"stretch"`.
        pad_value: the class of padded mask pixels. Defaults to `1` (the
            pets' background); `VOID` for other data.

    Returns:
        uint8 image `(height, width, 3)` and uint8 mask `(height, width, 1)`.
    """
    height, width = image_shape(size)
    wanted = tf.constant([height, width])
    if mode == "stretch":
        target = wanted
    else:
        original = tf.cast(tf.shape(mask)[:2], tf.float32)
        scales = tf.cast(wanted, tf.float32) / original
        scale = tf.reduce_max(scales) if mode == "crop" else tf.reduce_min(scales)
        target = tf.cast(tf.math.ceil(original * scale - 1e-3), tf.int32)
        target = tf.maximum(target, 1)
    shrinking = tf.reduce_all(target <= tf.shape(image)[:2])
    image = tf.cond(
        shrinking,
        lambda: tf.image.resize(image, target, method="area"),
        lambda: tf.image.resize(image, target, method="bilinear"),
    )
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    mask = tf.image.resize(mask, target, method="nearest")
    if mode == "stretch":
        return image, mask
    if mode == "crop":
        return (
            tf.image.resize_with_crop_or_pad(image, height, width),
            tf.image.resize_with_crop_or_pad(mask, height, width),
        )
    top = (height - target[0]) // 2
    left = (width - target[1]) // 2
    paddings = [[top, height - target[0] - top], [left, width - target[1] - left]]
    return (
        tf.pad(image, [*paddings, [0, 0]]),
        tf.pad(mask, [*paddings, [0, 0]], constant_values=pad_value),
    )


def trimap_to_mask(trimap, binary=False):
    """Trimap values 1 (pet), 2 (background), 3 (border) to classes 0, 1, 2.

    With `binary=True`: 0 = pet and border, 1 = background.
    """
    mask = trimap - 1
    if binary:
        mask = tf.cast(tf.equal(mask, 1), mask.dtype)
    return mask


def preprocess(image, image_size, trimap, size, mode, binary, keep_original):
    """Checks and resizes one decoded example; never raises on bad values."""
    trimap = tf.ensure_shape(trimap, [None, None, 1])
    same_size = tf.reduce_all(tf.equal(image_size, tf.shape(trimap)[:2]))
    valid_values = tf.reduce_all((trimap >= 1) & (trimap <= 3))
    status = tf.where(
        same_size,
        tf.where(valid_values, STATUS_OK, STATUS_BAD_TRIMAP_VALUES),
        STATUS_SIZE_MISMATCH,
    )
    mask = trimap_to_mask(tf.clip_by_value(trimap, 1, 3), binary)
    resized_image, resized_mask = resize_pair(image, mask, size, mode)
    example = {"image": resized_image, "mask": resized_mask, "status": status}
    if keep_original:
        example["original_mask"] = mask
    return example


class MaskReader:
    """Reads mask files as class ids through a `DatasetDescription`.

    NumPy and PIL (`folders.read_mask`: 8- and 16-bit ids, palette indices,
    0/255, colours), called inside `tf.data` by `graph`. Void values give
    `VOID`; a value the description does not declare gives
    `STATUS_UNDECLARED` (named with its pixels by `inspect_folder_pair`).

    Args:
        description: a `DatasetDescription`.
    """

    def __init__(self, description):
        self.description = description
        self.rgb = description.masks == "rgb"
        if not self.rgb:
            self.table = description.mask_lookup(65536)
            self.declared = np.zeros(65536, bool)
            self.declared[sorted(description.declared_values())] = True

    def __call__(self, path):
        """`(ids (H, W, 1) uint8, status int32)` of one mask file."""
        path = path.decode() if isinstance(path, bytes) else path
        values, _ = read_mask(path, colors=self.rgb)
        status = STATUS_OK
        if self.rgb:
            try:
                ids = self.description.colors_to_ids(values, path)
            except DataError:
                ids, status = np.zeros(values.shape[:2], np.uint8), STATUS_UNDECLARED
        elif values.ndim == 3:  # colours, but the description reads ids
            ids, status = np.zeros(values.shape[:2], np.uint8), STATUS_UNDECLARED
        else:
            ids = self.table[values]
            if not self.declared[values].all():
                status = STATUS_UNDECLARED
        return ids[..., None], np.int32(status)

    def graph(self, path):
        """`__call__` as a graph op on a string tensor."""
        ids, status = tf.numpy_function(
            self, [path], [tf.uint8, tf.int32], stateful=False
        )
        ids.set_shape([None, None, 1])
        status.set_shape([])
        return ids, status


def preprocess_ids(image, image_size, mask, status, size, mode, keep_original):
    """Checks and resizes one decoded example whose mask holds class ids
    (`MaskReader`); never raises on bad values."""
    same_size = tf.reduce_all(tf.equal(image_size, tf.shape(mask)[:2]))
    status = tf.where(same_size, status, STATUS_SIZE_MISMATCH)
    resized_image, resized_mask = resize_pair(image, mask, size, mode, VOID)
    example = {"image": resized_image, "mask": resized_mask, "status": status}
    if keep_original:
        example["original_mask"] = mask
    return example


def inspect_folder_pair(image_path, mask_path, description):
    """`inspect_pair` for a described folder's pair: the image through the
    pipeline's decoder, the mask through `folders.inspect_masks`."""
    try:
        decode_image(tf.io.read_file(image_path))
    except tf.errors.OpError as error:
        return f"image {image_path!r} cannot be decoded ({_first_line(error)})"
    pair = Pair(image_path, mask_path, os.path.basename(image_path))
    problems = inspect_masks([pair], description).problems
    return f"{mask_path}: {problems[mask_path]}" if problems else None


def inspect_pair(image_path, trimap_path):
    """Checks one image/trimap pair eagerly; returns its problem or `None`.

    The same decoders as the pipeline, run file by file: used by
    `verify-data` and to name the file behind a failed pipeline run.
    """
    for kind, path in (("image", image_path), ("trimap", trimap_path)):
        if not os.path.isfile(path):
            return f"{kind} file {path!r} is missing"
    try:
        image, image_size = decode_image(tf.io.read_file(image_path))
    except tf.errors.OpError as error:
        return f"image {image_path!r} cannot be decoded ({_first_line(error)})"
    try:
        trimap = tf.io.decode_png(tf.io.read_file(trimap_path), channels=1)
    except tf.errors.OpError as error:
        return f"trimap {trimap_path!r} cannot be decoded ({_first_line(error)})"
    status = int(
        preprocess(image, image_size, trimap, 8, "stretch", False, False)["status"]
    )
    if status == STATUS_SIZE_MISMATCH:
        return (
            f"trimap {trimap_path!r} is {trimap.shape[1]}x{trimap.shape[0]} px but "
            f"its image is {int(image_size[1])}x{int(image_size[0])} px"
        )
    if status == STATUS_BAD_TRIMAP_VALUES:
        values = np.unique(trimap.numpy()).tolist()
        return f"trimap {trimap_path!r} has values {values}; expected only 1, 2, 3"
    return None


def _first_line(error):
    """The decoder's own words, without TensorFlow's op and device names."""
    message = getattr(error, "message", str(error)).strip().splitlines()[0]
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:\w+\].*$", "", message)
    return message[:200]


def check_resize_mode(resize_mode):
    if resize_mode not in RESIZE_MODES:
        raise ValueError(
            f"`resize_mode` must be one of {list(RESIZE_MODES)}; received "
            f"{resize_mode!r}."
        )
