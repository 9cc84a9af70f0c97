"""One way from an image to a mask: resize, forward pass, test-time
augmentation, resize back.

Training's test report, `tfseg evaluate`, `tfseg predict`, the demo, the
export check and `tfseg compare` all segment through here: the image is
read (`read_image`) and resized as the pipeline resizes (`resize_image`:
area averaging to shrink, bilinear to grow), the model gives logits at its
input size, and the logits are resized back to the image's own size
(`resize_logits`, bilinear) before the argmax.

`tta="flip"` (`--tta flip`) averages the logits of each image and of its
mirror image (mirrored back): two forward passes for a steadier mask.
Overlap-tile inference of the valid U-Net is `tfseg.models.predict_tiled`
(it needs only Keras, so it sits with the models).
"""

import contextlib

import keras
import numpy as np

from tfseg.config import DEFAULT_BATCH_SIZE
from tfseg.config import TTA_MODES

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


def read_image(path):
    """uint8 RGB `(h, w, 3)` of an image file, turned as its EXIF orientation
    says (as a photo viewer shows it); `ValueError` if unreadable."""
    from PIL import ImageOps

    with open_image(path) as picture:
        return np.asarray(ImageOps.exif_transpose(picture).convert("RGB"))


def shown_size(path):
    """`(width, height)` of an image file as `read_image` reads it (its EXIF
    orientation applied), from its header alone: nothing is decoded."""
    with open_image(path) as picture:
        width, height = picture.size
        if picture.getexif().get(0x0112) in QUARTER_TURNS:
            return height, width
        return width, height


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


def segment(model, image, tta="none"):
    """The class mask, `(h, w)` uint8, of one uint8 `(h, w, 3)` image of any
    size."""
    size = model.input_shape[1:3]
    logits = model_logits(model, resize_image(image, size)[None], tta)[0]
    return resize_logits(logits, np.shape(image)[:2]).argmax(-1).astype(np.uint8)
