"""Scores a model on a split and writes the reports: `tfseg evaluate` and
the test report at the end of a training run.

Masks come from `tfseg.inference` (the one way from an image to a mask);
scores are reported at the training resolution and at each image's
original one (`--resolution image`: there only, run at that size padded),
from a confusion matrix (`tfseg.metrics.ConfusionMatrix`).
"""

import dataclasses
import os

from tfseg import files
from tfseg import runs
from tfseg.compatibility import check_input_size
from tfseg.compatibility import check_same_classes
from tfseg.compatibility import exported_config
from tfseg.config import DEFAULT_BATCH_SIZE
from tfseg.config import format_size
from tfseg.data.described import describe_data
from tfseg.inference import RESOLUTION_MODES
from tfseg.inference import ImageFiles
from tfseg.inference import check_image_files
from tfseg.inference import check_tta
from tfseg.inference import image_files
from tfseg.inference import native_logits
from tfseg.inference import predict_logits
from tfseg.inference import resize_logits
from tfseg.inference import usable_resolution
from tfseg.metrics import ConfusionMatrix
from tfseg.metrics import class_names_for
from tfseg.progress import Progress

# Test images shown in a run's predictions.png.
SHOWN_IMAGES = 6
# The resolutions a report scores at, in its order.
RESOLUTIONS = ("training_resolution", "original_resolution")


def evaluate_model(
    model,
    examples,
    batch_size=DEFAULT_BATCH_SIZE,
    progress=True,
    tta="none",
    class_names=None,
    resolution="model",
    images=None,
    pad="reflect",
):
    """Scores `model` on `Examples`.

    Args:
        model: a segmentation model (images 0..255 in, logits out).
        examples: `Examples`; with `original_masks`, scores at the original
            resolution too.
        batch_size: images per forward pass. Defaults to
            `tfseg.config.DEFAULT_BATCH_SIZE` (16).
        progress: show progress. Defaults to `True`.
        tta: `"none"` or `"flip"` (see `tfseg.config.TTA_MODES`). Defaults
            to `"none"`.
        class_names: the name of each class. Defaults to `None`
            (`class_names_for` the model's output count). Void pixels
            (`VOID`) are scored in no class and counted as `ignored_pixels`.
        resolution: `"model"` (`examples.images`, scored at that size and,
            the logits resized back, the original one) or `"image"`
            (`images`, each run at its own size, padded with `pad`:
            `"reflect"` or `"zero"`; scored there). Defaults to `"model"`.
        images: with `"image"`, the examples' images at their original size,
            in order: a sequence of uint8 `(h, w, 3)` (`ImageFiles`).

    Returns:
        dict: `images` (the number scored), `class_names`, `resolution`, and
        per resolution scored (`training_resolution`, and
        `original_resolution` when original masks are there) the scores of
        `ConfusionMatrix.scores`; `tta` with flips, `pad` with `"image"`.

    Raises:
        ValueError: for `"image"` without `images` or masks of each size.
    """
    check_tta(model, tta)
    resolution = usable_resolution(model, resolution)[0]
    if resolution == "image":
        _check_originals(examples, images)
        batches = native_logits(model, images, batch_size, tta, pad)
    else:
        batches = predict_logits(model, examples.images, batch_size, tta)
    num_classes = model.output_shape[-1]
    at_training = ConfusionMatrix(num_classes) if resolution == "model" else None
    at_original = ConfusionMatrix(num_classes) if examples.original_masks else None
    counter = Progress(len(examples), "scoring the test split", enabled=progress)
    for start, logits in batches:
        if at_training is not None:
            masks = examples.masks[start : start + len(logits)]
            at_training.update(masks[..., 0], logits.argmax(-1))
        for offset, image_logits in enumerate(logits if at_original else ()):
            original = examples.original_masks[start + offset]
            if resolution == "model":
                image_logits = resize_logits(image_logits, original.shape[:2])
            elif image_logits.shape[:2] != original.shape[:2]:
                raise ValueError(
                    f"{examples.names[start + offset]}: the image given is "
                    f"{format_size(image_logits.shape[:2])}, its mask "
                    f"{format_size(original.shape[:2])}. Pass the images the masks "
                    "were read from (`ImageFiles`), in the examples' order."
                )
            at_original.update(original[..., 0], image_logits.argmax(-1))
        counter.advance(len(logits))
    counter.done()
    report = {
        "images": len(examples),
        "class_names": list(class_names or class_names_for(num_classes)),
        "resolution": resolution,
    }
    for key, matrix in zip(RESOLUTIONS, (at_training, at_original)):
        if matrix is not None:
            report[key] = matrix.scores()
    if resolution == "image":
        report["pad"] = pad
    if tta != "none":
        report["tta"] = tta
    return report


def _check_originals(examples, images):
    """Raises `ValueError` unless `images` and `examples.original_masks`
    hold one image and one mask at its original size for each example."""
    found = [0 if x is None else len(x) for x in (images, examples.original_masks)]
    if found != [len(examples)] * 2:
        raise ValueError(
            "Scoring at each image's own resolution needs each image and mask at "
            f"its own size: received {found[0]} images and {found[1]} masks for "
            f"{len(examples)} examples (.npz exports hold no masks at their own "
            "size). Pass images=ImageFiles(paths), or use resolution='model'."
        )


def format_report(report):
    """A Markdown table of a report from `evaluate_model`."""
    names = report["class_names"]
    header = ["resolution", "global acc", "class acc", "mean IoU", "fw IoU"]
    header += [*(f"IoU {n}" for n in names), *(f"Dice {n}" for n in names)]
    source = report.get("data")
    flips = " with flip test-time augmentation" if report.get("tta") else ""
    if report.get("resolution") == "image":
        flips += f", each at its own resolution ({report['pad']} padding)"
    model = report.get("model")
    by = (
        f" with {os.path.basename(model['path'])} ({model['runtime']})" if model else ""
    )
    lines = [
        f"Scored {report['images']} images"
        + (f" of the {source['split']} split of {source['source']}" if source else "")
        + f"{by}{flips}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    ignored = []
    for key in RESOLUTIONS:
        if key not in report:
            continue
        scores = report[key]
        values = [
            scores["pixel_accuracy"],
            scores.get("class_average_accuracy", float("nan")),
            scores["mean_iou"],
            scores.get("frequency_weighted_iou", float("nan")),
            *scores["iou"],
            *scores["dice"],
        ]
        cells = [key.replace("_", " "), *(f"{v:.4f}" for v in values)]
        lines.append("| " + " | ".join(cells) + " |")
        if scores.get("ignored_pixels"):
            total = scores["ignored_pixels"] + scores["pixels"]
            ignored.append(
                f"{scores['ignored_pixels']:,} void pixels ignored at "
                f"{key.replace('_', ' ')} (of {total:,})"
            )
    lines += (
        ["", "Mean IoU is over the classes; " + "; ".join(ignored) + "."]
        if ignored
        else []
    )
    return "\n".join(lines)


def write_report(report, json_path):
    """Writes `report` as JSON to `json_path` and as Markdown beside it."""
    files.write_json(json_path, report)
    files.atomic_write(
        os.path.splitext(json_path)[0] + ".md", format_report(report) + "\n"
    )
    return json_path


def describe_source(config):
    """Where a config's data comes from, for a report."""
    if config.data_npz:
        return f"exported splits {config.data_npz}"
    if config.synthetic:
        return f"{config.synthetic} synthetic pets (seed {config.seed})"
    return config.data_dir or "TensorFlow Datasets oxford_iiit_pet"


def with_data(config, data_dir=None, data_npz=None, **changes):
    """`config` reading its data from `data_dir` or `data_npz` (absolute)
    instead of its own source, with any other `changes`."""
    return dataclasses.replace(
        config,
        data_dir=data_dir and os.path.abspath(data_dir),
        data_npz=data_npz and os.path.abspath(data_npz),
        synthetic=0,
        **changes,
    )


def report_run(run_dir, test, config):
    """Scores the run's best model on `test` and writes the run's reports:
    `model.keras`, `metrics.json`/`.md`, `predictions.png`, `curves.png`."""
    from tfseg import visualize  # matplotlib

    model = runs.write_final_model(run_dir, config.image_shape)
    report = evaluate_model(
        model, test, config.batch_size, class_names=config.class_names
    )
    report["data"] = {"source": describe_source(config), "split": "test"}
    write_report(report, runs.report_paths(run_dir)[0])
    print(format_report(report))
    shown = test.take(range(min(SHOWN_IMAGES, len(test))))
    _, logits = next(predict_logits(model, shown.images, len(shown)))  # one batch
    visualize.save_prediction_grid(
        os.path.join(run_dir, "predictions.png"),
        shown.images,
        shown.masks,
        [logits.argmax(-1)],
        names=shown.names,
        class_names=config.class_names,
        colors=config.class_colors,
    )
    visualize.save_curves(
        os.path.join(run_dir, runs.HISTORY), os.path.join(run_dir, "curves.png")
    )
    return report


def evaluate_run(
    path,
    data_dir=None,
    data_npz=None,
    out=None,
    skip_bad=False,
    model_file=None,
    image_size=None,
    tta="none",
    dataset=None,
    resolution="model",
):
    """Scores a run's model, or an exported model, on a test split and
    writes a report.

    - A run folder, with neither `data_dir` nor `data_npz`: its own test
      split, into its `metrics.json`. With other data, only that data's test
      split is read (a folder with just `annotations/test.txt` will do), and
      the report goes to `metrics_<folder or file name>.json`, recording its
      source: the run's own report stays.
    - A run folder with `model_file` (an exported `.tflite`, `.onnx`,
      SavedModel or `.keras`): that model, run by its own runtime, on the
      run's data (or the data given), into `metrics_<file name>.json`.
    - An exported model in a run folder (`RUN/model_int8.tflite`) is the
      run's: the same as `RUN --model FILE` (its data, its report names).
    - An exported model alone: on the test split of `data_dir` or
      `data_npz` (required), into `<file name>.metrics.json` beside it.
    - With `tta="flip"`, the name gains `tta-flip` (`metrics_tta-flip.json`
      for a run's own split): the plain report stays beside it.
    - `resolution="image"`: each image at its own size, from its file, into
      `metrics_resolution-image.json`; a fixed-size export keeps `"model"`.

    The names are `report_path`'s; each report records its data (source,
    split) and the number of images scored. Other data is read with its own
    description (`dataset`, or its `dataset.json`), else with the run's
    classes and void; a class count other than the model's is refused.

    Returns:
        The path of the JSON report.
    """
    from tfseg.data.loading import load_splits  # may need TF
    from tfseg.deploy.runtimes import is_run
    from tfseg.deploy.runtimes import load_deployed
    from tfseg.deploy.runtimes import model_kind

    if out and os.path.isdir(out):
        raise runs.RunError(f"--out {out!r} is a folder; pass a .json file path.")
    path, model_file = owning_run(path, model_file)
    data = data_dir or data_npz
    names_known = True
    if is_run(path):
        if model_file:
            config, _ = runs.read_config(path)
            model = load_deployed(model_file)
        else:
            config, model = runs.open_run(path)
    else:
        model_kind(path)  # a path that is no model is said first
        if model_file:
            raise runs.RunError(
                f"--model is for a run folder; {path!r} is not one (it has no "
                f"{runs.CONFIG}). Pass the model file as the path itself."
            )
        if not data:
            raise runs.RunError(
                f"Scoring the exported model {path!r} needs data: pass --data-dir "
                "DIR (an Oxford-IIIT Pet folder) or --data-npz FILE."
            )
        model = load_deployed(path)
        config, names_known = exported_config(model)
    resolution, note = usable_resolution(model, resolution)
    if note:
        print(note)
    default_out = report_path(path, model_file, data, tta, resolution)
    check_tta(model, tta)
    check_input_size(model, config.image_size, image_size)
    if data_dir or data_npz:
        own = config
        config = with_data(
            config, data_dir, data_npz, max_examples=None, cache_dir=None
        )
        dataset = dataset and os.path.abspath(dataset)
        config = describe_data(
            dataclasses.replace(config, description=None, dataset=dataset),
            fallback=own.description,
        )
        check_same_classes(own, config, data, names_known)
    config = dataclasses.replace(config, skip_bad=skip_bad or config.skip_bad)
    if resolution == "image":
        check_image_files(config)  # before reading the data
    test = load_splits(config, splits=["test"])["test"]
    images = ImageFiles(image_files(config, test)) if resolution == "image" else None
    options = dict(tta=tta, class_names=config.class_names, images=images)
    report = evaluate_model(
        model, test, config.batch_size, resolution=resolution, **options
    )
    report["data"] = {
        "source": describe_source(config),
        "split": "test",
        "skipped": sorted(test.skipped),
    }
    if hasattr(model, "describe"):
        report["model"] = model.describe()
    try:
        json_path = write_report(report, out or default_out)
    except files.FileError as error:
        print(format_report(report))  # the scores are not lost
        raise runs.RunError(
            f"{error} The scores are above; write the report elsewhere with "
            "--out FILE.json."
        ) from error
    print(format_report(report))
    print(f"report written to {json_path} (and .md)")
    return json_path


def owning_run(path, model_file=None):
    """`(path, model_file)`, where an exported model inside a run folder
    (`RUN/model_int8.tflite`) becomes `(RUN, that file)`: scored as
    `evaluate RUN --model FILE` is, under the same report names."""
    from tfseg.deploy.runtimes import is_run

    folder = os.path.dirname(os.path.abspath(path))
    if model_file is None and not is_run(path) and is_run(folder):
        return folder, path
    return path, model_file


def report_path(path, model_file=None, data=None, tta="none", resolution="model"):
    """The one naming rule of a report (the JSON; the Markdown is beside it).

    - `path` a run folder: `metrics[_<model file>][_<data>][_tta-<mode>].json`
      in it, the parts there only where they are not the run's own (the
      run's model on the run's data is `metrics.json`);
    - `path` an exported model alone: `<path>[.tta-<mode>].metrics.json`
      beside it (its data is always given, and recorded in the report);
    - a resolution other than `"model"` adds `resolution-<mode>` after tta.

    Pass `(path, model_file)` through `owning_run` first.
    """
    from tfseg.deploy.runtimes import is_run

    flips = [] if tta == "none" else [f"tta-{tta}"]
    flips += [] if resolution == RESOLUTION_MODES[0] else [f"resolution-{resolution}"]
    if not is_run(path):
        return (
            os.path.normpath(path) + "".join(f".{f}" for f in flips) + ".metrics.json"
        )
    names = [os.path.basename(os.path.normpath(model_file))] if model_file else []
    if data:
        names.append(os.path.splitext(os.path.basename(os.path.normpath(data)))[0])
    return runs.report_paths(path, "_".join(names + flips) or None)[0]
