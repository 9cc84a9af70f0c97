"""`tfseg demo`: a local web page that segments a photo you drop on it.

    tfseg demo runs/20261126-074123_mobilenet_unet      # http://127.0.0.1:7860
    tfseg demo RUN_DIR --host 0.0.0.0 --port 8080       # reachable from others

The page (Gradio, `pip install "tfseg[demo]"`; `tfseg.demo.page` builds and serves it)
shows, for a JPEG or PNG of any size, grayscale or RGBA, the photo with the
mask painted over it in the colours of `tfseg predict` (the dataset's own
where its `dataset.json` gives them, with a legend naming the run's
classes, and an opacity slider), the mask alone, and the share of pixels
of each class;
a second tab shows the run: its configuration, `metrics.md`, `curves.png`
and `predictions.png`. This module holds everything but the page, so it
runs and is tested without Gradio:

- `load_for_demo(path)`: the one loader. The model loads once, at start.
- `read_photo(path)`: an upload, refused from its header alone above
  `MAX_PIXELS` (a 50-megapixel photo is never decoded).
- `segment_photo` / `render`: `tfseg.inference.segment`, the path of
  `tfseg predict`, then the pictures and the table the page shows.

Analytics and every other call home of Gradio are off; the server listens
on 127.0.0.1 unless `--host` says otherwise.
"""

import dataclasses
import importlib.util
import os
import time

import numpy as np

from tfseg import runs
from tfseg.deploy import runtimes

# Largest photo the page takes, in pixels (24-megapixel cameras fit): a
# larger one is refused from its header, before decoding. The forward pass
# is at the model's size, but the logits are resized back to the photo's
# (3 float32 values a pixel), so memory grows with the photo.
MAX_PIXELS = 25_000_000
# Longest side, in pixels, of the pictures sent to the browser; the mask
# and the shares are computed at the photo's own size.
DISPLAY_SIZE = 1024
# Example photos from the run's test split, one click each.
NUM_EXAMPLES = 6
# Upload size limit of the server (Gradio's `max_file_size`).
MAX_UPLOAD = "100mb"
# Environment that turns Gradio's and Hugging Face's calls home off.
OFFLINE = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


@dataclasses.dataclass
class DemoModel:
    """A model loaded for the demo, and what the page says about it.

    Attributes:
        model: what `tfseg.inference.segment` takes.
        class_names: the name of each class id.
        title: the page's title (the run folder's or the file's name).
        colors: `(r, g, b)` per class, or `None` (the pets' colours).
        unpainted: class ids the overlay leaves bare (`None`: the pets'
            background; `()`: none).
        details: `{label: value}` of the configuration shown on the second tab.
        report: the run's `metrics.md` (`""` if there is none).
        figures: `{caption: PNG path}` of the run's pictures that exist.
        examples: image paths of the run's test split (empty where the data
            is not there).
    """

    model: object
    class_names: tuple
    title: str
    details: dict
    colors: tuple = None
    unpainted: tuple = None
    report: str = ""
    figures: dict = dataclasses.field(default_factory=dict)
    examples: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Segmentation:
    """One segmented photo, at display size, and its class shares.

    Attributes:
        name: the file's name.
        image: uint8 `(h, w, 3)`, the photo, longest side at most
            `DISPLAY_SIZE`.
        mask: uint8 `(h, w)` class ids at the same size.
        pixels: pixels of each class at the photo's own size.
        size: `(width, height)` of the photo.
        seconds: time of the segmentation.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    pixels: np.ndarray
    size: tuple
    seconds: float


def check_source(path):
    """Raises `RunError` unless `path` is a run folder or a model file
    `tfseg.deploy.runtimes` runs. Reads no model (no Keras): the command answers a
    wrong path at once."""
    path = os.fspath(path)
    if not runtimes.is_run(path):
        runtimes.model_kind(path)  # says what is wrong with the path


def load_for_demo(path):
    """Loads a run folder's model (or an exported model) for the demo.

    Args:
        path: a run folder, or a model file `tfseg.deploy.runtimes.load_deployed`
            runs (what `tfseg export` writes, or a `.keras` file).

    Returns:
        A `DemoModel`.

    Raises:
        RunError: for a path that is neither, or an unfinished run.
        ValueError: for an exported file whose runtime is not installed.

    Example:

    >>> demo = load_for_demo("runs/20261126-074123_mobilenet_unet")  # doctest: +SKIP
    >>> segment_photo(demo, "my_cat.jpg").pixels  # doctest: +SKIP
    """
    check_source(path)
    if runtimes.is_run(path):
        return _load_run(path)
    return _load_exported(path)


def _load_run(run_dir):
    from tfseg.config import format_size
    from tfseg.evaluate import describe_source

    config, model = runs.open_run(run_dir)
    classes = runtimes.class_table(config, model)
    _, record = runs.read_config(run_dir)
    state = runs.read_state(run_dir)
    details = {
        "run folder": os.path.abspath(run_dir),
        "model": config.model,
        "encoder": config.encoder or "the model's own",
        "builder arguments": config.model_args or "defaults",
        "image size": f"{format_size(config.image_size)} px",
        "classes": ", ".join(classes.names),
        "epochs": f"{state['epochs_done']} of {config.epochs}",
        "precision": record.get("precision", config.precision),
        "loss": config.loss,
        "data": describe_source(config),
        "Keras backend": record.get("versions", {}).get("backend", "?"),
    }
    if config.alpha is not None:
        details["alpha"] = config.alpha
    _, report_md = runs.report_paths(run_dir)
    figures = {
        caption: os.path.join(run_dir, name)
        for caption, name in (
            ("training curves", "curves.png"),
            ("test predictions", "predictions.png"),
        )
        if os.path.isfile(os.path.join(run_dir, name))
    }
    return DemoModel(
        model=model,
        class_names=classes.names,
        title=os.path.basename(os.path.normpath(run_dir)),
        details=details,
        colors=classes.colors,
        unpainted=classes.unpainted,
        report=_read_text(report_md),
        figures=figures,
        examples=example_photos(config),
    )


def _load_exported(path):
    from tfseg.config import format_size

    model = runtimes.load_deployed(path)
    classes = runtimes.class_table(None, model)  # its sidecar's classes
    details = {**model.describe(), **model.metadata}
    details.pop("dataset", None)  # the classes are listed, not the whole JSON
    details["class_names"] = ", ".join(classes.names)
    if details.get("image_size"):
        details["image_size"] = f"{format_size(details['image_size'])} px"
    return DemoModel(
        model=model,
        class_names=classes.names,
        title=os.path.basename(os.path.normpath(path)),
        details=details,
        colors=classes.colors,
        unpainted=classes.unpainted,
    )


def _read_text(path):
    if not os.path.isfile(path):
        return ""
    with open(path, encoding="utf-8") as file:
        return file.read()


def example_photos(config, count=NUM_EXAMPLES):
    """Image paths of the first `count` images of a run's test split, where
    its data folder (or its cached synthetic pets) is there; else `[]`.

    Args:
        config: the run's `TrainConfig`: an Oxford-IIIT Pet folder, its
            synthetic pets, or a described folder (its splits as the run
            found them: `tfseg.data.described.assign_splits`, same seed).
        count: how many. Defaults to `NUM_EXAMPLES`.

    Returns:
        A list of image paths (`[]` for exported splits, TFDS, or data that
        moved).
    """
    from tfseg.data.layout import OxfordPetFolder
    from tfseg.data.loading import synthetic_folder

    try:
        folder = synthetic_folder(config) if config.synthetic else config.data_dir
        if not folder:
            return []
        if config.description:
            return _described_examples(config, count)
        splits, _ = OxfordPetFolder(folder).splits(
            config.val_fraction, seed=config.seed, wanted=["test"]
        )
    except (OSError, ValueError):
        return []  # the data moved or was never local: no examples
    return [record.image_path for record in splits["test"][:count]]


def _described_examples(config, count):
    """The first `count` image paths of a described folder's test split."""
    from tfseg.data.described import assign_splits
    from tfseg.data.folders import find_layout

    splits = config.description.get("splits")
    layout = find_layout(config.data_dir, splits, skip_bad=True)
    chosen, _ = assign_splits(
        layout, config.val_fraction, config.seed, wanted=("test",)
    )
    return [pair.image_path for pair in chosen["test"][:count]]


def read_photo(path, max_pixels=MAX_PIXELS):
    """uint8 RGB `(h, w, 3)` of an uploaded file (any format PIL reads,
    grayscale, palette or RGBA).

    Raises:
        ValueError: for a file that is not an image, is damaged, or has more
            than `max_pixels` pixels (read from its header, never decoded).
    """
    from tfseg.inference import read_image
    from tfseg.inference import shown_size

    name = os.path.basename(path)
    try:
        width, height = shown_size(path)
    except ValueError:
        width = height = 0  # not an image: read_image says why
    if width * height > max_pixels:
        raise ValueError(
            f"{name} is {width} x {height} = {width * height / 1e6:.1f} "
            f"megapixels; the demo takes photos of at most {max_pixels / 1e6:g} "
            "megapixels. Scale it down (e.g. to 4000 px on its longer side) and "
            "drop it again."
        )
    try:
        return read_image(path)
    except ValueError as error:
        reason = str(error.__cause__).replace(path, name)  # PIL names the file
        raise ValueError(
            f"{name} cannot be read as an image ({reason}). Drop a JPEG or PNG photo."
        ) from error


def segment_photo(demo, path):
    """Reads and segments one photo with `tfseg.inference.segment` (the path
    of `tfseg predict`); returns a `Segmentation`.

    Raises:
        ValueError: for a file `read_photo` refuses.
    """
    from PIL import Image

    from tfseg.inference import resize_image
    from tfseg.inference import segment

    image = read_photo(path)
    start = time.perf_counter()
    mask = segment(demo.model, image)
    seconds = time.perf_counter() - start
    pixels = np.bincount(mask.ravel(), minlength=len(demo.class_names))
    height, width = mask.shape
    scale = min(1.0, DISPLAY_SIZE / max(height, width))
    shown = (max(1, round(height * scale)), max(1, round(width * scale)))
    if scale < 1:
        image = resize_image(image, shown).astype(np.uint8)
        mask = np.asarray(Image.fromarray(mask).resize(shown[::-1], Image.NEAREST))
    return Segmentation(
        os.path.basename(path), image, mask, pixels, (width, height), seconds
    )


def share_table(segmentation, class_names):
    """A Markdown table: pixels and share of each class (shares sum to 100 %).

    Args:
        segmentation: a `Segmentation`.
        class_names: the name of each class id (`DemoModel.class_names`).

    Returns:
        The table's text, one row per class in id order.
    """
    total = int(segmentation.pixels.sum())
    lines = ["| class | pixels | share |", "| --- | ---: | ---: |"]
    lines += [
        f"| {name} | {int(count):,} | {100 * count / total:.1f} % |"
        for name, count in zip(class_names, segmentation.pixels)
    ]
    return "\n".join(lines)


def render(segmentation, class_names, opacity, colors=None, unpainted=None):
    """The page's two pictures: the photo with the classes painted over it
    at `opacity` (and a legend), and the mask alone in the same colours.

    Args:
        segmentation: a `Segmentation`.
        class_names: the name of each class id.
        opacity: the share of the class colour, 0 to 1.
        colors: `(r, g, b)` per class (`DemoModel.colors`). Defaults to
            `None` (the pets' colours).
        unpainted: class ids left bare (`DemoModel.unpainted`). Defaults to
            `None` (the pets' background).

    Returns:
        `(uint8 overlay with its legend strip, palette PIL image of the
        mask)`.
    """
    from tfseg import visualize

    painted = visualize.overlay_with_legend(
        segmentation.image,
        segmentation.mask,
        class_names,
        alpha=opacity,
        colors=colors,
        unpainted=unpainted,
    )
    return painted, visualize.palette_image(segmentation.mask, colors, unpainted)


def describe(segmentation):
    """One status line for a segmented photo."""
    width, height = segmentation.size
    return (
        f"Segmented {segmentation.name} ({width} x {height} px) in "
        f"{segmentation.seconds:.2f} s."
    )


def require_gradio():
    """Raises `RuntimeError` saying what to install where Gradio is missing."""
    if importlib.util.find_spec("gradio") is None:
        raise RuntimeError(
            "`tfseg demo` needs Gradio, which is not installed here. Install the "
            'demo extra: python3 -m pip install "tfseg[demo]" (in a checkout: '
            "python3 -m pip install -r requirements-dev.txt)."
        )
