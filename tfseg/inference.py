"""One way from an image to a mask: resize (or pad), forward pass, test-time
augmentation, resize (or crop) back.

Training's test report, `tfseg evaluate`, `tfseg predict`, the demo, the
export check and `tfseg compare` all segment through here. Two resolutions
(`RESOLUTION_MODES`, `--resolution`):

- `"model"`: the image is read (`read_image`) and resized as the pipeline
  resizes (`resize_image`: area averaging to shrink, bilinear to grow), the
  model gives logits at its input size, and the logits are resized back to
  the image's own size (`resize_logits`, bilinear) before the argmax.
- `"image"`: fully convolutional inference, what FCN is for. The image is
  padded (reflected, `pad_image`) to the next multiple of the model's size
  rule (`size_multiple`), the same network is run at that size
  (`NativeResolution`: the graph cloned on a new input, the weights copied,
  one rebuilt model kept per padded shape) and the logits are cropped back.
  No resize touches the pixels. Exported models have a fixed size and keep
  `"model"` (`usable_resolution` says so); the valid U-Net runs
  overlap-tile (`tfseg.models.predict_tiled`) instead of a rebuild.

`tta="flip"` (`--tta flip`) averages the logits of each image and of its
mirror image (mirrored back): two forward passes for a steadier mask.
"""

import collections
import contextlib

import keras
import numpy as np

from tfseg.config import DEFAULT_BATCH_SIZE
from tfseg.config import RESOLUTION_MODES
from tfseg.config import TTA_MODES
from tfseg.models.rebuild import clone_at
from tfseg.models.rebuild import with_input_size

# `--resolution`: resize to the model's input size and back, or run at the
# image's own size, padded. The first is the default.
# How `"image"` fills the padding: mirrored pixels (the default; the U-Net
# paper's overlap-tile does the same) or black (0, before the model's own
# normalisation).
PAD_MODES = ("reflect", "zero")
# Rebuilt models `NativeResolution` keeps, the most recently used shapes.
CACHED_SHAPES = 4

# EXIF orientations (tag 0x0112) of a photo stored turned a quarter: a
# phone held upright writes 6 or 8, and its width is the shown height.
QUARTER_TURNS = (5, 6, 7, 8)


@contextlib.contextmanager
def open_image(path):
    """`PIL.Image.open(path)`; `ValueError` naming the file if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            yield picture
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: cannot be read as an image ({error})") from error


def read_image(path, turn=True):
    """uint8 RGB `(h, w, 3)` of an image file, turned as its EXIF orientation
    says (as a photo viewer shows it; with `turn=False`, as stored, as the
    training pipeline decodes it); `ValueError` if unreadable."""
    from PIL import ImageOps

    with open_image(path) as picture:
        picture = ImageOps.exif_transpose(picture) if turn else picture
        return np.asarray(picture.convert("RGB"))


class ImageFiles:
    """Images read when indexed: a sequence of uint8 `(h, w, 3)` arrays of
    `paths`, as stored (no EXIF turn: the size the pipeline decodes them
    at, that of their masks). For scoring at each image's own size."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return read_image(self.paths[index], turn=False)


def shown_size(path):
    """`(width, height)` of an image file as `read_image` reads it (its EXIF
    orientation applied), from its header alone: nothing is decoded."""
    with open_image(path) as picture:
        width, height = picture.size
        if picture.getexif().get(0x0112) in QUARTER_TURNS:
            return height, width
        return width, height


def check_image_files(config):
    """Raises `RunError` where `config`'s data has no image files to read
    at their own size (TensorFlow Datasets, `.npz` exports)."""
    from tfseg import runs

    if config.data_npz or not (config.data_dir or config.synthetic):
        raise runs.RunError(
            "--resolution image reads each test image from its file, at its own "
            f"size, but {config.data_npz or 'TensorFlow Datasets'} has none. Pass "
            "--data-dir DIR (a folder of the images), or use --resolution model."
        )


def image_files(config, examples):
    """The image file of each of `examples` (a split `load_splits(config)`
    gave), to read them at their own size (`ImageFiles`).

    Raises:
        RunError: for data without image files (`check_image_files`).
    """
    from tfseg import data
    from tfseg.data.described import assign_splits
    from tfseg.data.loading import synthetic_folder

    check_image_files(config)
    if config.description and config.data_dir:  # as load_splits reads them
        splits = data.DatasetDescription.from_dict(config.description).splits
        layout = data.find_layout(config.data_dir, splits, skip_bad=True)
        chosen, _ = assign_splits(layout, config.val_fraction, config.seed, ["test"])
        paths = {pair.name: pair.image_path for pair in chosen["test"]}
        return [paths[name] for name in examples.names]
    root = synthetic_folder(config) if config.synthetic else config.data_dir
    return [data.OxfordPetFolder(root).image_path(name) for name in examples.names]


def resize_image(image, size):
    """Resizes a uint8 `(h, w, 3)` image to `size` `(height, width)` as the
    pipeline does: area averaging (PIL's box filter) to shrink, bilinear to
    grow. Returns float32 0..255."""
    from PIL import Image  # only for images from files

    height, width = size
    picture = Image.fromarray(np.asarray(image, np.uint8))
    shrinking = picture.width >= width and picture.height >= height
    method = Image.BOX if shrinking else Image.BILINEAR
    return np.asarray(picture.resize((width, height), method), np.float32)


def resize_logits(logits, size):
    """Bilinear resizing of `(H, W, C)` logits to `size` `(h, w)`: the
    argmax of the result is the mask at that size."""
    resized = keras.ops.image.resize(logits[None], size, interpolation="bilinear")
    return keras.ops.convert_to_numpy(resized)[0]


def check_tta(model, tta):
    """Raises `ValueError` for an unknown mode, or flips of a model that
    outputs class ids (which cannot be averaged)."""
    if tta not in TTA_MODES:
        raise ValueError(f"--tta must be one of {TTA_MODES}, not {tta!r}.")
    if tta != "none" and getattr(model, "argmax_output", False):
        raise ValueError(
            "--tta flip averages the logits of an image and its mirror, but this "
            "model outputs class ids (exported with --output argmax); score a "
            "run folder or a file exported with logits."
        )


def model_logits(model, batch, tta="none"):
    """Logits of a float32 batch, as NumPy; with `tta="flip"`, the mean of
    the batch's and of its mirror's (mirrored back)."""
    logits = keras.ops.convert_to_numpy(model(batch, training=False))
    if tta == "flip":
        mirrored = np.ascontiguousarray(batch[:, :, ::-1])
        flipped = keras.ops.convert_to_numpy(model(mirrored, training=False))
        logits = (logits.astype(np.float32) + flipped[:, :, ::-1]) / 2
    return logits


def predict_logits(model, images, batch_size=DEFAULT_BATCH_SIZE, tta="none"):
    """Yields `(start, logits)` for batches of uint8 or float images."""
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start : start + batch_size], np.float32)
        yield start, model_logits(model, batch, tta)


def segment(model, image, tta="none", resolution="model", pad="reflect"):
    """The class mask, `(h, w)` uint8, of one uint8 `(h, w, 3)` image of any
    size.

    Args:
        model: a Keras model, or an exported one (`tfseg.deploy.runtimes`).
        image: uint8 `(h, w, 3)`.
        tta: `"none"` or `"flip"`. Defaults to `"none"`.
        resolution: `"model"` (resized to the model's input size, logits
            resized back) or `"image"` (at the image's own size, padded;
            an exported fixed-size model keeps `"model"`, see
            `usable_resolution`). Defaults to `"model"`.
        pad: with `"image"`, `"reflect"` or `"zero"`. Defaults to
            `"reflect"`.

    Returns:
        uint8 `(h, w)` class ids.
    """
    if usable_resolution(model, resolution)[0] == "image":
        logits = native_resolution(model, pad).logits(np.asarray(image)[None], tta)
        return logits[0].argmax(-1).astype(np.uint8)
    size = model.input_shape[1:3]
    logits = model_logits(model, resize_image(image, size)[None], tta)[0]
    return resize_logits(logits, np.shape(image)[:2]).argmax(-1).astype(np.uint8)


def usable_resolution(model, resolution):
    """`(resolution, note)`: the resolution `model` runs at when `resolution`
    is asked, and `note`, a sentence saying why where that is not it
    (`None` otherwise).

    `"image"` rebuilds the network at each padded size, which needs a Keras
    model (a run's, or an exported `.keras` file's); a `.tflite`, `.onnx` or
    SavedModel export has a fixed input size and keeps `"model"`.

    Raises:
        ValueError: for a mode not in `RESOLUTION_MODES`.
    """
    if resolution not in RESOLUTION_MODES:
        raise ValueError(
            f"--resolution must be one of {RESOLUTION_MODES}, not {resolution!r}."
        )
    if resolution == "model" or keras_model_of(model) is not None:
        return resolution, None
    height, width = model.input_shape[1:3]
    kind = getattr(model, "kind", type(model).__name__)
    return "model", (
        f"note: --resolution image runs the network at each image's own size, "
        f"rebuilt from its Keras layers; this {kind} model has a fixed "
        f"{height}x{width} input and no layers to rebuild, so it runs at "
        f"--resolution model (each image resized to {height}x{width}, the "
        "logits resized back). Score the run folder (its model.keras) for image."
    )


def keras_model_of(model):
    """The Keras model behind `model` (itself, or that of an exported
    `.keras` file), or `None` where there is none (`.tflite`, `.onnx`)."""
    inner = model if isinstance(model, keras.Model) else getattr(model, "model", None)
    if isinstance(inner, keras.Model) and len(inner.inputs) == 1:
        if len(inner.input_shape) == 4 and len(inner.output_shape) == 4:
            return inner
    return None


def size_multiple(model):
    """`(height, width)`: the sides a fully convolutional Keras model takes
    are multiples of these.

    Read from the graph at the model's own input size: the largest
    downsampling of any of its feature maps. That is each builder's size
    rule (32 for the `keras.applications` encoders, `2**depth` for the plain
    U-Net, `2**num_downsamples` for pix2pix: `check_input_size` in
    `tfseg.models`), for the network as it was built and trained.
    """
    size = model.input_shape[1:3]
    multiple = [1, 1]
    for layer in model.layers:
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer called more than once
            continue
        for tensor in outputs:
            shape = tuple(tensor.shape)
            for axis, side in enumerate(shape[1:3] if len(shape) == 4 else ()):
                if side and size[axis] % side == 0:
                    multiple[axis] = max(multiple[axis], size[axis] // side)
    return tuple(multiple)


def padded_size(size, multiple):
    """`(height, width)`: `size` rounded up to multiples of `multiple`."""
    return tuple(max(m, -(-int(s) // m) * m) for s, m in zip(size, multiple))


def pad_image(images, size, mode="reflect"):
    """Pads a batch `(n, h, w, c)` to `size` `(H, W)`, centred: `(padded,
    (top, left))`, where the images lie at `[top:top + h, left:left + w]`.

    `mode` `"reflect"` mirrors the image into the border (no pixel
    repeated); `"zero"` fills it with 0 (black)."""
    if mode not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, not {mode!r}.")
    height, width = images.shape[1:3]
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    widths = ((0, 0), (top, size[0] - height - top), (left, size[1] - width - left))
    widths += ((0, 0),)
    padded = np.pad(images, widths, mode="reflect" if mode == "reflect" else "constant")
    return padded, (top, left)


class NativeResolution:
    """Runs a Keras model at each image's own resolution, padded to the
    model's multiple (fully convolutional inference).

    Args:
        model: a Keras model whose output is as large as its input (every
            model of `tfseg.models` with same padding), or a valid U-Net
            (run overlap-tile by `tfseg.models.predict_tiled`).
        pad: `"reflect"` or `"zero"` (`PAD_MODES`). Defaults to `"reflect"`.
        rebuild: `(height, width) -> keras.Model`, the same architecture at
            that input size (its weights are then set to the model's).
            Defaults to `clone_at`.
        cached: rebuilt models kept, the most recently used padded shapes.
            Defaults to `CACHED_SHAPES` (4).

    Raises:
        ValueError: for no Keras model or an unknown `pad`.
    """

    def __init__(self, model, pad="reflect", rebuild=None, cached=CACHED_SHAPES):
        self.model = keras_model_of(model)
        if self.model is None:
            raise ValueError(
                f"Running at each image's own resolution rebuilds a Keras model; "
                f"received {type(model).__name__}, which has a fixed input size. "
                "Use resolution='model', or pass the run's Keras model."
            )
        pad_image(np.zeros((1, 1, 1, 1)), (1, 1), pad)  # checks the mode
        self.pad = pad
        self.rebuild = rebuild or (lambda size: clone_at(self.model, size))
        self.cached = cached
        # A smaller output: a valid U-Net (predict_tiled says if it is not).
        self.tiled = self.model.output_shape[1:3] != self.model.input_shape[1:3]
        self.multiple = (1, 1) if self.tiled else size_multiple(self.model)
        self._models = collections.OrderedDict()

    def padded_size(self, size):
        """The input size an image of `size` `(h, w)` is run at."""
        return padded_size(size, self.multiple)

    def model_at(self, size):
        """The network at input `size` `(H, W)` (multiples of `multiple`):
        the model itself at its own size, else a rebuilt copy holding its
        weights (kept for the next image of that size).

        Raises:
            ValueError: where the weights do not fit the rebuilt network (a
                model with size-dependent weights).
        """
        size = tuple(int(side) for side in size)
        if size == tuple(self.model.input_shape[1:3]):
            return self.model
        if size not in self._models:
            self._models[size] = with_input_size(self.model, size, self.rebuild)
            while len(self._models) > self.cached:
                self._models.popitem(last=False)
        self._models.move_to_end(size)
        return self._models[size]

    def logits(self, images, tta="none"):
        """float32 logits `(n, h, w, C)` of a batch `(n, h, w, 3)` of images
        of one size (0..255), at that size."""
        images = np.asarray(images, np.float32)
        if images.ndim != 4:
            raise ValueError(
                f"images must be a batch (n, height, width, channels); received "
                f"shape {images.shape}. Pass image[None] for one image."
            )
        if self.tiled:
            return np.stack([self._tiled(image, tta) for image in images])
        height, width = images.shape[1:3]
        size = self.padded_size((height, width))
        padded, (top, left) = pad_image(images, size, self.pad)
        logits = model_logits(self.model_at(size), padded, tta)
        return np.asarray(
            logits[:, top : top + height, left : left + width], np.float32
        )

    def _tiled(self, image, tta):
        from tfseg.models import predict_tiled

        logits = predict_tiled(self.model, image)
        if tta == "flip":
            logits = (logits + predict_tiled(self.model, image[:, ::-1])[:, ::-1]) / 2
        return logits


def native_logits(
    model, images, batch_size=DEFAULT_BATCH_SIZE, tta="none", pad="reflect"
):
    """Yields `(start, logits)` for runs of consecutive images of one size
    (at most `batch_size`), each batch at that size padded
    (`NativeResolution`): float32 `(n, h, w, C)`. `images` is any sequence
    of `(h, w, 3)` arrays (`ImageFiles` reads each once, when its turn comes).
    """
    runner = native_resolution(model, pad)
    batch, start = [], 0
    for index in range(len(images)):
        image = np.asarray(images[index])
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield start, runner.logits(np.stack(batch), tta)
            batch, start = [], index
        batch.append(image)
    if batch:
        yield start, runner.logits(np.stack(batch), tta)


def native_resolution(model, pad="reflect"):
    """The `NativeResolution` of `model` and `pad`, made once and kept with
    the model (its rebuilt networks serve every later image).

    Raises:
        ValueError: as `NativeResolution`.
    """
    keras_model = keras_model_of(model)
    if keras_model is None:
        return NativeResolution(model, pad)  # raises, saying why
    runners = keras_model.__dict__.get("_tfseg_native_resolution")
    if runners is None:
        runners = {}
        # Past Keras's attribute tracking: a cache, not part of the model.
        object.__setattr__(keras_model, "_tfseg_native_resolution", runners)
    if pad not in runners:
        runners[pad] = NativeResolution(keras_model, pad)
    return runners[pad]
