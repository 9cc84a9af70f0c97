"""Segments a user's own image files with a run's model, or an exported
one: `tfseg predict`.

Each readable image gets, in the output folder, `<name>_mask.png` (the
class ids `0..N-1` of the model's classes, at the image's own size: for
Oxford-IIIT Pet 0 = pet, 1 = background, 2 = border; for your own data
the ids of its `dataset.json`), `<name>_colour.png` (the same ids as a
palette PNG whose palette is the classes' colours, the dataset's own where
it gives them, so any viewer shows it in the overlay colours) and
`<name>_overlay.png` (the photo with the classes painted over it and a
legend naming them). The classes are the run's (its `config.json`), or for
an exported model alone those its sidecar records
(`tfseg.deploy.runtimes.class_table`). A folder stands for the images in
it (`--recursive`: in its subfolders too). Unreadable files are named at
the end; the others are still predicted.
"""

import collections
import os
import sys

from tfseg import files
from tfseg import runs
from tfseg.config import RESOLUTION_MODES
from tfseg.progress import Progress


def output_stems(paths):
    """A distinct output name per input path: the file's stem, prefixed with
    its folder's name where two stems collide (`a/cat.jpg`, `b/cat.jpg` ->
    `a_cat`, `b_cat`), numbered if they still collide."""
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    counts = collections.Counter(stems)
    named = [
        stem
        if counts[stem] == 1
        else f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}_{stem}"
        for path, stem in zip(paths, stems)
    ]
    seen = collections.Counter()
    unique = []
    for name in named:
        seen[name] += 1
        unique.append(name if named.count(name) == 1 else f"{name}_{seen[name]}")
    return unique


def prepare_output_dir(out):
    if os.path.exists(out) and not os.path.isdir(out):
        raise runs.RunError(
            f"--out {out!r} is a file; pass a folder (it is made if missing)."
        )
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        raise runs.RunError(
            f"--out {out!r} cannot be made: {error.strerror}."
        ) from error


def image_paths(paths, recursive=False):
    """The files of `paths`, a folder replaced by its image files (those
    whose ending PIL opens, sorted; its subfolders' too with `recursive`).

    Raises:
        RunError: for a folder that holds no image file.
    """
    from PIL import Image

    endings = {
        ending
        for ending, kind in Image.registered_extensions().items()
        if kind in Image.OPEN
    }
    found = []
    for path in paths:
        if not os.path.isdir(path):
            found.append(path)
            continue
        walk = os.walk(path) if recursive else [next(os.walk(path))]
        images = sorted(
            os.path.join(folder, name)
            for folder, _, names in walk
            for name in names
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in endings
        )
        if not images:
            deeper = "" if recursive else " (--recursive looks in its subfolders too)"
            raise runs.RunError(
                f"The folder {path!r} holds no image file{deeper}; tfseg predicts "
                "files ending in .jpg, .png, .bmp, .gif, .tif or another image "
                "format PIL reads."
            )
        found += images
    return found


def predict_files(model_path, paths, out, tta="none", recursive=False, resolution=None):
    """Predicts every readable image of `paths` (files, or folders of
    images: `image_paths`) into the folder `out` with the model of a run
    folder or an exported model at `model_path` (see the module docstring
    for the files written).

    Args:
        model_path: a run folder, or a model file `tfseg export` wrote.
        paths: image files and folders of images.
        out: the output folder (made if missing).
        tta: `"none"` or `"flip"`. Defaults to `"none"`.
        recursive: look for images in the folders' subfolders too. Defaults
            to `False`.
        resolution: `"model"` (resized to the model's input and back) or
            `"image"` (each image at its own size, padded to the model's
            multiple; exported .tflite/.onnx files keep `"model"`, said
            once). Defaults to `RESOLUTION_MODES[0]`.

    Returns:
        `{path: problem}` of the images that could not be read.

    Raises:
        RunError: for a path that is no model, an `out` that is a file, or
            a folder without images.
    """
    from PIL import Image

    from tfseg import visualize
    from tfseg.deploy.runtimes import class_table
    from tfseg.deploy.runtimes import load_run_or_model
    from tfseg.inference import check_tta
    from tfseg.inference import read_image
    from tfseg.inference import segment
    from tfseg.inference import usable_resolution

    paths = image_paths(paths, recursive)
    prepare_output_dir(out)
    config, model = load_run_or_model(model_path)
    check_tta(model, tta)
    resolution, note = usable_resolution(model, resolution or RESOLUTION_MODES[0])
    if note:
        print(note)
    classes = class_table(config, model)
    failed = {}
    progress = Progress(len(paths), "predicting", enabled=len(paths) > 1)
    for path, stem in zip(paths, output_stems(paths)):
        progress.advance()
        try:
            image = read_image(path)
        except ValueError as error:
            failed[path] = str(error)
            continue
        mask = segment(model, image, tta, resolution)
        stem = os.path.join(out, stem)
        written = {
            f"{stem}_mask.png": Image.fromarray(mask),
            f"{stem}_colour.png": visualize.palette_image(mask, **classes.drawing()),
            f"{stem}_overlay.png": Image.fromarray(
                visualize.overlay_with_legend(
                    image, mask, classes.names, **classes.drawing()
                )
            ),
        }
        for target, picture in written.items():
            with files.atomic_path(target) as temporary:
                picture.save(temporary, format="PNG")
        print(f"{path} -> {stem}_mask.png, _colour.png, _overlay.png")
    progress.done()
    for problem in failed.values():
        print(f"error: {problem}", file=sys.stderr)
    if failed:
        print(
            f"{len(failed)} of {len(paths)} image(s) could not be read (above); "
            "the others were predicted.",
            file=sys.stderr,
        )
    return failed
