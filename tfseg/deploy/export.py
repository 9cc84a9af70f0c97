"""Exports a run's model: SavedModel, TFLite (LiteRT) or ONNX.

SavedModel and ONNX go through Keras's `model.export`. TFLite goes through
the same route Keras takes (an `ExportArchive` written as a SavedModel, then
TensorFlow's `TFLiteConverter`), here because `--quantize` and `--output`
need the converter's own settings:

- `none`: float32, the Keras model's numbers.
- `float16`: weights stored in float16 (half the file), computed in float32.
- `dynamic`: int8 weights, activations quantized on the fly.
- `int8`: full-integer post-training quantization, calibrated on images of
  the run's own training split (drawn with its seed, never the test split).
  Its input is uint8 RGB pixels with scale 1 and zero point 0, what a camera
  gives: the model's own rescaling is inside the integer graph. Its output
  is int8 logits (with their scale and zero point), or with `--output
  argmax` the uint8 class ids.

Every export writes a sidecar (`FILE.json`, `tfseg.json` in a SavedModel
folder) with the input, the classes (names, colours and the run's dataset
description), the quantization and the calibration data; `tfseg evaluate
FILE`, `tfseg predict FILE` and `tfseg demo FILE` read it, so an exported
model alone knows its classes.
"""

import datetime
import os
import tempfile
import warnings

from tfseg import files
from tfseg import runs

# --format: (Keras's `model.export` format, default name in the run folder)
FORMATS = {
    "savedmodel": ("tf_saved_model", "savedmodel"),
    "tflite": ("litert", "model.tflite"),
    "onnx": ("onnx", "model.onnx"),
}
QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")
OUTPUTS = ("logits", "argmax")
# Training images an int8 export is calibrated on (fewer if the split is
# smaller): a few hundred, as TensorFlow's guide suggests.
CALIBRATION_IMAGES = 300


def default_path(run_dir, export_format, quantize, output):
    """`model.tflite`, `model_int8.tflite`, `model_int8_argmax.tflite`, ...
    in the run folder."""
    stem, ending = os.path.splitext(FORMATS[export_format][1])
    suffix = "".join(
        f"_{part}" for part in (quantize, output) if part not in ("none", "logits")
    )
    return os.path.join(run_dir, stem + suffix + ending)


def check_options(export_format, quantize, output):
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"--quantize {quantize!r} is not a mode; choose one of "
            f"{', '.join(QUANTIZE_MODES)}."
        )
    if output not in OUTPUTS:
        raise ValueError(f"--output {output!r}: choose one of {', '.join(OUTPUTS)}.")
    given = [f"--quantize {quantize}"] * (quantize != "none")
    given += [f"--output {output}"] * (output != "logits")
    if export_format != "tflite" and given:
        raise ValueError(
            f"{' and '.join(given)} is for --format tflite (the TFLite "
            f"converter does it); received --format {export_format}. Export "
            "with --format tflite, or drop it."
        )


def export_run(
    run_dir,
    export_format,
    out=None,
    quantize="none",
    output="logits",
    data_dir=None,
    data_npz=None,
    calibration_images=CALIBRATION_IMAGES,
):
    """Writes the run's model in `export_format` to `out` (default: in the
    run folder) with its sidecar; returns the path.

    Args:
        run_dir: a finished run folder.
        export_format: a key of `FORMATS`.
        out: the file (or SavedModel folder) to write.
        quantize: one of `QUANTIZE_MODES` (TFLite only).
        output: `"logits"`, or `"argmax"` for uint8 class ids (TFLite only).
        data_dir, data_npz: where to read the run's training split for int8
            calibration when the run's own source is not at hand.
        calibration_images: how many training images calibrate an int8
            export.
    """
    from tfseg.deploy.runtimes import sidecar_path

    check_options(export_format, quantize, output)
    runs.read_config(run_dir)  # a path that is no run is said first
    if calibration_images < 1:
        raise ValueError(
            f"--calibration-images {calibration_images}: calibrating needs at "
            f"least 1 image (default: {CALIBRATION_IMAGES})."
        )
    out = os.path.abspath(out or default_path(run_dir, export_format, quantize, output))
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise runs.RunError(
            f"--out {out!r}: the folder {parent!r} does not exist. Create it "
            "first, or pass a path in an existing folder."
        )
    runs.check_writable(parent, "--out", given=out)  # before the conversion
    check_target(out, export_format)
    config, model = runs.open_run(run_dir)
    calibration = None
    if quantize == "int8":
        calibration = calibration_split(
            config, calibration_images, data_dir=data_dir, data_npz=data_npz
        )
    if export_format == "tflite":
        content = tflite_model(model, quantize, output, calibration)
        with files.atomic_path(out) as temporary:
            with open(temporary, "wb") as file:
                file.write(content)
    else:
        keras_export(model, out, export_format)
    metadata = describe_export(
        run_dir, config, model, export_format, quantize, output, calibration
    )
    files.write_json(sidecar_path(out), metadata)
    size = file_size(out)
    print(
        f"exported {export_format}"
        + (f" ({quantize})" if quantize != "none" else "")
        + f" to {out} ({size / 2**20:.2f} MiB)"
    )
    return out


def keras_export(model, out, export_format):
    """SavedModel or ONNX through Keras's `model.export`."""
    import numpy as np

    # Keras traces the ONNX graph from a model that has run once; a model
    # fresh from load_model has not.
    model(np.zeros((1, *model.input_shape[1:]), np.float32))
    try:
        with warnings.catch_warnings():
            # tf2onnx reads `np.object`, which NumPy 2 warns of on each export.
            warnings.filterwarnings(
                "ignore", "In the future `np.object`", FutureWarning
            )
            model.export(out, format=FORMATS[export_format][0], verbose=False)
    except ImportError as error:
        raise ValueError(
            f"{export_format} export needs extra packages ({error}); install "
            "them with `python3 -m pip install onnx tf2onnx` (the project's "
            "`export` extra) on the TensorFlow backend and retry."
        ) from error


def file_size(path):
    """Bytes of a file, or of every file in a folder."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path)
        for name in names
    )


def calibration_split(config, count, data_dir=None, data_npz=None):
    """`count` uint8 images of the run's training split (fewer if it is
    smaller), drawn with the run's seed, and a record of them.

    Args:
        config: the run's `TrainConfig`: its own data (a described folder
            is read with its recorded description) unless `data_dir` or
            `data_npz` is given.
        count: how many images, at most.
        data_dir: another folder holding the run's training split, read
            with its own `dataset.json`, else with the run's description.
            Defaults to `None`.
        data_npz: exported splits to read instead. Defaults to `None`.

    Returns:
        `(images, record)`: uint8 `(n, H, W, 3)` and what the sidecar
        records of them (split, source, seed, count, names).

    Raises:
        RunError: when the training split cannot be read, saying which data
            it needs and how to pass it.
    """
    import dataclasses

    import numpy as np

    from tfseg.data.described import describe_data
    from tfseg.data.loading import load_splits
    from tfseg.evaluate import describe_source
    from tfseg.evaluate import with_data

    own = config
    if data_dir or data_npz:
        config = with_data(config, data_dir, data_npz)
    source = describe_source(config)
    try:
        if data_dir or data_npz:
            # The other data's own description, else the run's.
            config = describe_data(
                dataclasses.replace(config, description=None, dataset=None),
                fallback=own.description,
            )
        train = load_splits(config, splits=["train"], progress=False)["train"]
    except (ValueError, RuntimeError, OSError) as error:
        raise runs.RunError(
            f"--quantize int8 calibrates on images of the run's training split "
            f"({source}), which cannot be read: {error} Pass --data-dir DIR "
            "(the folder it was trained on) or --data-npz FILE."
        ) from error
    if not len(train):
        raise runs.RunError(
            f"The training split of {source} has no images; --quantize int8 "
            "calibrates on them. Pass --data-dir DIR with the run's training "
            "images, or export without --quantize int8."
        )
    order = np.random.default_rng(config.seed).permutation(len(train))
    chosen = order[: min(count, len(train))]
    images = train.images[chosen].copy()
    # The calibrated input range is the pixels' own; one black and one white
    # pixel make it exactly 0..255, so the uint8 input is raw pixels
    # (scale 1, zero point 0) whatever the images hold.
    images[0, 0, 0] = 0
    images[0, 0, 1] = 255
    record = {
        "split": "train",
        "source": source,
        "seed": config.seed,
        "images": len(chosen),
        "names": [str(name) for name in train.names[chosen]],
    }
    return images, record


def tflite_model(model, quantize, output, calibration=None):
    """The bytes of a `.tflite` file of `model` (see the module docstring)."""
    import keras
    import tensorflow as tf

    def serve(images):
        logits = model(images, training=False)
        if output == "argmax":
            return tf.cast(tf.argmax(logits, axis=-1), tf.uint8)
        return logits

    with tempfile.TemporaryDirectory() as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serve",
            serve,
            input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)],
        )
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            images, _ = calibration

            def representative_dataset():
                for image in images:
                    yield [image[None].astype("float32")]

            converter.representative_dataset = representative_dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            if output == "logits":
                converter.inference_output_type = tf.int8
        return converter.convert()


def describe_export(run_dir, config, model, export_format, quantize, output, data):
    """The sidecar of an export: what a user needs to feed and read it, and
    the classes it was trained on, so the file alone knows them.

    Args:
        run_dir: the run folder exported.
        config: its `TrainConfig`.
        model: its Keras model.
        export_format, quantize, output: as `export_run` takes them.
        data: the calibration `(images, record)` of an int8 export, or
            `None`.

    Returns:
        A JSON-ready dict: `input`, `num_classes`, `class_names` (the run's),
        `colors` (`[r, g, b]` per class, or `None`: the pets' drawing
        table), `dataset` (the run's `DatasetDescription` as a dict, `None`
        for Oxford-IIIT Pet), `image_size` (a side, or `[height, width]`),
        the run's model settings and the calibration record.
    """
    from tfseg.deploy.runtimes import class_table

    num_classes = model.output_shape[-1]
    integer_input = quantize == "int8"
    classes = class_table(config, model)
    height, width = config.image_shape
    return {
        "format": export_format,
        "quantize": quantize,
        "output": output,
        "input": {
            "shape": [1, *model.input_shape[1:]],
            "dtype": "uint8" if integer_input else "float32",
            "pixels": "RGB 0..255"
            + (" (scale 1, zero point 0)" if integer_input else ""),
        },
        "output_meaning": "uint8 class ids"
        if output == "argmax"
        else f"{'int8' if integer_input else 'float32'} logits per class",
        "num_classes": num_classes,
        "class_names": list(classes.names),
        "colors": [list(colour) for colour in config.class_colors or ()] or None,
        "dataset": config.description,
        "run": os.path.abspath(run_dir),
        "model": config.model,
        "encoder": config.encoder,
        "alpha": config.alpha,
        "image_size": height if height == width else [height, width],
        "calibration": data[1] if data else None,
        "exported": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def check_target(out, export_format):
    """Raises `RunError` for an `--out` the format cannot be written to: a
    SavedModel is a folder of its own; TFLite and ONNX are files."""
    if export_format == "savedmodel":
        reusable = os.path.isdir(out) and (
            not os.listdir(out) or os.path.isfile(os.path.join(out, "saved_model.pb"))
        )
        if os.path.exists(out) and not reusable:
            raise runs.RunError(
                f"--out {out!r} exists and is not a SavedModel: a SavedModel is a "
                "folder of its own. Pass a new path."
            )
        return
    ending = os.path.splitext(FORMATS[export_format][1])[1]
    if os.path.isdir(out) or not out.endswith(ending):
        raise runs.RunError(
            f"--out {out!r}: a {export_format} export is one file whose name "
            f"ends in {ending}, e.g. {os.path.join(out, 'model' + ending)!r}."
        )
