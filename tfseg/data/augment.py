"""Training augmentation applied to whole batches, image and mask alike.

One affine transform per image (horizontal flip, random scale with a
random crop position, small rotation) gives one set of sampling points,
at which the image is read bilinearly and the mask by nearest neighbour, so
both move together; areas that come from outside the image are filled by
reflection. Colour jitter (brightness, contrast, saturation) touches the
images only. All draws come from one seed per batch, so a seed reproduces
an epoch exactly.

Why one compiled warp over the whole batch (a decision; see docs/DESIGN.md
and docs/BENCHMARKS.md, 2-core CPU, 128 px, batch 32): compiled with XLA,
the warp of a batch fuses into a few loops and runs about 5x faster than
TensorFlow's `ImageProjectiveTransformV3` op on the same batch (11,700
against about 2,200 images/s for the geometric warp alone), and a whole
augmented epoch runs at 1.9x a plain per-example `tf.data` map of flip,
zoom-crop and brightness (6,239 against 3,222 images/s). Sharing the
sampling points also makes it impossible for the mask to drift from its
image.

The arithmetic is written once against a small table of array operations
(`NUMPY_OPS`, `jax_ops()`, `tf_ops()`) and runs three ways:
`Augmentation.__call__` in TensorFlow, compiled with XLA inside the tf.data
pipeline; `Augmentation.on_arrays` in NumPy, or compiled with JAX on its
default device, for machines without TensorFlow (the `.npz` path). This
module imports TensorFlow only when the TensorFlow way is used.
"""

import dataclasses
import functools
import math
import types

import numpy as np

from tfseg.sizes import image_shape

# Uniform draws per image: flip, zoom, angle, shift x, shift y, contrast,
# saturation, brightness.
DRAWS = 8


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Random training transforms; call it on a batch.

    Attributes:
        flip: flip half the images left-right. Defaults to `True`.
        scale: range of the zoom factor; above 1 zooms in on a random part
            of the image, below 1 zooms out. Defaults to `(0.9, 1.4)`.
        rotation: largest rotation, in degrees, either way. Defaults to `10`.
        brightness: largest brightness shift as a fraction of 255. Defaults
            to `0.1`.
        contrast: largest relative contrast change. Defaults to `0.2`.
        saturation: largest relative saturation change. Defaults to `0.2`.
        crop: `(height, width)` of the output, a window of each image
            (`--crop`): the zoom and shift then place that window in the
            full-resolution image. `None` keeps the input size. Defaults to
            `None`.
    """

    flip: bool = True
    scale: tuple = (0.9, 1.4)
    rotation: float = 10.0
    brightness: float = 0.1
    contrast: float = 0.2
    saturation: float = 0.2
    crop: tuple = None

    @classmethod
    def crop_only(cls, size):
        """Random windows of `size` `(height, width)` and nothing else (the
        training batches of `--crop` with `--no-augment`): each output is
        a window of its input, pixel for pixel."""
        return cls(
            flip=False,
            scale=(1.0, 1.0),
            rotation=0.0,
            brightness=0.0,
            contrast=0.0,
            saturation=0.0,
            crop=image_shape(size),
        )

    def __post_init__(self):
        low, high = self.scale
        if not 0 < low <= high:
            raise ValueError(
                f"`scale` must be a range (low, high) with 0 < low <= high; "
                f"received scale={self.scale!r}."
            )
        for name in ("rotation", "brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"`{name}` must be >= 0; received {getattr(self, name)!r}."
                )

    @property
    def size(self):
        """The output `(height, width)`, or `None` for the input's."""
        return None if self.crop is None else image_shape(self.crop)

    def amounts(self):
        """The settings as the flat list of numbers `_augment` reads. The
        last, `snap`, is 1 where no zoom or rotation is drawn: the window's
        offset is then rounded to whole pixels, so the output is the
        input's pixels, not interpolated between them."""
        snap = self.scale == (1.0, 1.0) and self.rotation == 0
        return [
            float(self.flip),
            math.log(self.scale[0]),
            math.log(self.scale[1]),
            self.rotation * math.pi / 180.0,
            self.brightness,
            self.contrast,
            self.saturation,
            float(snap),
        ]

    def __call__(self, images, masks, seed):
        """Augments a batch with TensorFlow (inside a tf.data pipeline).

        Args:
            images: uint8 or float `(batch, H, W, 3)`, values in 0..255.
            masks: integer `(batch, H, W, 1)`.
            seed: int tensor of shape `(2,)`.

        Returns:
            float32 images in 0..255 and masks of the input dtype.
        """
        import tensorflow as tf

        return _compiled_tf(self.size)(
            tf.cast(images, tf.float32),
            masks,
            tf.cast(seed, tf.int64),
            tf.constant(self.amounts(), tf.float32),
        )

    def on_arrays(self, images, masks, seed, on_device=False):
        """Augments a batch of NumPy arrays; needs no TensorFlow.

        The same transforms as calling the object, drawn from NumPy's
        generator (so the draws differ from the TensorFlow way's).

        Args:
            images: uint8 or float `(batch, H, W, 3)`, values in 0..255.
            masks: integer `(batch, H, W, 1)`.
            seed: anything `numpy.random.default_rng` takes.
            on_device: run it with JAX, compiled, on JAX's default device
                (the GPU, where there is one), and return JAX arrays. The
                same seed gives the same result either way, to float
                rounding. Defaults to `False` (NumPy on the CPU).

        Returns:
            float32 images in 0..255 and masks of the input dtype.
        """
        uniforms = np.random.default_rng(seed).random(
            (DRAWS, len(images)), dtype=np.float32
        )
        amounts = np.float32(self.amounts())
        if on_device:
            return _compiled_jax(self.size)(
                np.asarray(images), np.asarray(masks), uniforms, amounts
            )
        images = np.asarray(images, np.float32)
        return _augment(
            NUMPY_OPS, images, np.asarray(masks), uniforms, amounts, self.size
        )


def array_ops(xp):
    """The operations `_augment` and `warp` use, for NumPy or `jax.numpy`."""
    return types.SimpleNamespace(
        exp=xp.exp,
        log=xp.log,
        cos=xp.cos,
        sin=xp.sin,
        where=xp.where,
        maximum=xp.maximum,
        minimum=xp.minimum,
        floor=xp.floor,
        round=xp.round,
        floormod=xp.mod,
        stack=xp.stack,
        reshape=xp.reshape,
        clip=xp.clip,
        shape=xp.shape,
        gather=lambda values, indices: values[indices],
        mean=lambda x, axis: x.mean(axis=axis, keepdims=True, dtype=xp.float32),
        sum=lambda x, axis: x.sum(axis=axis, keepdims=True, dtype=xp.float32),
        to_int=lambda x: x.astype(xp.int32),
        to_float=lambda x: xp.asarray(x, xp.float32),
        arange=xp.arange,
        grid=lambda height, width: xp.meshgrid(
            xp.arange(height, dtype=xp.float32),
            xp.arange(width, dtype=xp.float32),
            indexing="ij",
        ),
    )


NUMPY_OPS = array_ops(np)


@functools.cache
def jax_ops():
    """The table for `jax.numpy` (the `.npz` path on the JAX backend)."""
    import jax

    return array_ops(jax.numpy)


@functools.cache
def _compiled_jax(size=None):
    import jax

    return jax.jit(functools.partial(_augment, jax_ops(), size=size))


@functools.cache
def tf_ops():
    """The table for TensorFlow tensors (the tf.data pipeline)."""
    import tensorflow as tf

    return types.SimpleNamespace(
        exp=tf.exp,
        log=tf.math.log,
        cos=tf.cos,
        sin=tf.sin,
        where=tf.where,
        maximum=tf.maximum,
        minimum=tf.minimum,
        floor=tf.floor,
        round=tf.round,
        floormod=tf.math.floormod,
        stack=tf.stack,
        reshape=tf.reshape,
        clip=tf.clip_by_value,
        shape=tf.shape,
        gather=tf.gather,
        mean=lambda x, axis: tf.reduce_mean(x, axis=axis, keepdims=True),
        sum=lambda x, axis: tf.reduce_sum(x, axis=axis, keepdims=True),
        to_int=lambda x: tf.cast(x, tf.int32),
        to_float=lambda x: tf.cast(x, tf.float32),
        arange=tf.range,
        grid=lambda height, width: tf.meshgrid(
            tf.range(tf.cast(height, tf.float32)),
            tf.range(tf.cast(width, tf.float32)),
            indexing="ij",
        ),
    )


@functools.cache
def _compiled_tf(size=None):
    # Compiled with XLA: the whole batch transform fuses into a few loops,
    # about 5x faster on CPU than TensorFlow's ImageProjectiveTransformV3 op
    # (see the module docstring).
    import tensorflow as tf

    ops = tf_ops()

    @tf.function(jit_compile=True)
    def augment(images, masks, seed, amounts):
        uniforms = tf.random.stateless_uniform([DRAWS, tf.shape(images)[0]], seed)
        return _augment(ops, images, masks, uniforms, tf.unstack(amounts), size)

    return augment


def _augment(ops, images, masks, uniforms, amounts, size=None):
    """Samples one transform and jitter per image and applies them; the
    output is `size` `(height, width)` (a window), or the input's size."""
    flip, log_low, log_high, rotation, brightness, contrast, saturation, snap = amounts
    shape = ops.shape(images)
    height, width = ops.to_float(shape[1]), ops.to_float(shape[2])
    out_height, out_width = (height, width) if size is None else map(float, size)

    def uniform(index, low, high):
        return low + (high - low) * uniforms[index]

    flips = 1.0 - 2.0 * ops.to_float(uniforms[0] < 0.5 * flip)
    zoom = ops.exp(uniform(1, log_low, log_high))
    angle = uniform(2, -rotation, rotation)
    # The output window covers (out / zoom) of the input on each axis,
    # which leaves room to move it by up to (in - out / zoom) / 2 either way
    # ((1 - 1/zoom) / 2 of each side, at the input's own size).
    shift_x = uniform(3, -1.0, 1.0) * ops.maximum(width - out_width / zoom, 0.0) / 2.0
    shift_y = uniform(4, -1.0, 1.0) * ops.maximum(height - out_height / zoom, 0.0) / 2.0

    # Output pixel (x, y) samples the input at A @ (x - c') + c + shift,
    # A = rotation(angle) @ diag(flip, 1) / zoom, c and c' = the input's and
    # the output's centres.
    cos, sin = ops.cos(angle) / zoom, ops.sin(angle) / zoom
    a0, a1, b0, b1 = flips * cos, -sin, flips * sin, cos
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    out_cx, out_cy = (out_width - 1.0) / 2.0, (out_height - 1.0) / 2.0
    a2 = cx + shift_x - a0 * out_cx - a1 * out_cy
    b2 = cy + shift_y - b0 * out_cx - b1 * out_cy
    a2 += snap * (ops.round(a2) - a2)  # whole pixels: a window, not a resample
    b2 += snap * (ops.round(b2) - b2)
    transform = ops.stack([a0, a1, a2, b0, b1, b2], axis=1)
    images, masks = warp(images, masks, transform, ops, size)

    per_image = [-1, 1, 1, 1]
    mean = ops.mean(images, axis=(1, 2, 3))
    contrast_factor = ops.reshape(1.0 + uniform(5, -contrast, contrast), per_image)
    images = (images - mean) * contrast_factor + mean
    gray = ops.sum(images * np.float32([0.299, 0.587, 0.114]), axis=-1)
    saturation_factor = ops.reshape(
        1.0 + uniform(6, -saturation, saturation), per_image
    )
    images = gray + (images - gray) * saturation_factor
    images += ops.reshape(uniform(7, -brightness, brightness) * 255.0, per_image)
    return ops.clip(images, 0.0, 255.0), masks


def warp(images, masks, transform, ops=None, size=None):
    """Resamples images (bilinear) and masks (nearest) at the same points.

    Args:
        images: float32 `(batch, H, W, C)`.
        masks: `(batch, H, W, 1)`.
        transform: `(batch, 6)` rows `[a0, a1, a2, b0, b1, b2]`: output
            pixel `(x, y)` reads the input at `(a0 x + a1 y + a2,
            b0 x + b1 y + b2)`, reflected at the borders.
        ops: `NUMPY_OPS` for NumPy arrays (the default), or the TensorFlow
            table for tensors.
        size: `(height, width)` of the output; `None` for the input's.

    Returns:
        The warped images and masks. The identity transform returns the
        inputs exactly.
    """
    ops = ops or NUMPY_OPS
    shape = ops.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    ys, xs = ops.grid(*((height, width) if size is None else size))
    t = transform[:, :, None, None]
    x = _reflect(ops, t[:, 0] * xs + t[:, 1] * ys + t[:, 2], ops.to_float(width))
    y = _reflect(ops, t[:, 3] * xs + t[:, 4] * ys + t[:, 5], ops.to_float(height))
    # Flat indices into (batch * H * W, C): one set of coordinates serves
    # the image and the mask.
    base = ops.reshape(ops.arange(batch) * height * width, [-1, 1, 1])
    flat_images = ops.reshape(images, [-1, channels])

    def at(row, col):
        return ops.gather(flat_images, base + row * width + col)

    x0, y0 = ops.floor(x), ops.floor(y)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    col0, row0 = ops.to_int(x0), ops.to_int(y0)
    col1 = ops.minimum(col0 + 1, width - 1)
    row1 = ops.minimum(row0 + 1, height - 1)
    top = at(row0, col0) * (1.0 - wx) + at(row0, col1) * wx
    bottom = at(row1, col0) * (1.0 - wx) + at(row1, col1) * wx
    warped = top * (1.0 - wy) + bottom * wy
    nearest = base + ops.to_int(ops.round(y)) * width + ops.to_int(ops.round(x))
    warped_masks = ops.gather(ops.reshape(masks, [-1, 1]), nearest)
    return warped, warped_masks


def _reflect(ops, coordinate, size):
    """Reflects coordinates into [0, size - 1] ("d c b a | a b c d | d c b a")."""
    period = 2.0 * size
    coordinate = ops.floormod(coordinate + 0.5, period)
    coordinate = ops.where(coordinate >= size, period - coordinate, coordinate) - 0.5
    return ops.clip(coordinate, 0.0, size - 1.0)
