"""Exports a run's model through Keras's `model.export`: SavedModel, TFLite
(LiteRT) or ONNX. The tests run each exported file with the runtime a user
would deploy with and compare its logits with the Keras model's."""

import os

from tfseg import runs

# --format: (Keras's `model.export` format, default name in the run folder)
FORMATS = {
    "savedmodel": ("tf_saved_model", "savedmodel"),
    "tflite": ("litert", "model.tflite"),
    "onnx": ("onnx", "model.onnx"),
}


def export_run(run_dir, export_format, out=None):
    """Writes the run's model in `export_format` to `out` (default: in the
    run folder); returns the path."""
    import numpy as np

    keras_format, default_name = FORMATS[export_format]
    out = os.path.abspath(out or os.path.join(run_dir, default_name))
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise runs.RunError(
            f"--out {out!r}: the folder {parent!r} does not exist. Create it "
            "first, or pass a path in an existing folder."
        )
    check_target(out, export_format)
    _, model = runs.open_run(run_dir)
    # Keras traces the ONNX graph from a model that has run once; a model
    # fresh from load_model has not.
    model(np.zeros((1, *model.input_shape[1:]), np.float32))
    try:
        model.export(out, format=keras_format, verbose=False)
    except ImportError as error:
        raise ValueError(
            f"{export_format} export needs extra packages ({error}); install "
            "them with `python3 -m pip install onnx tf2onnx` (the project's "
            "`export` extra) on the TensorFlow backend and retry."
        ) from error
    print(f"exported {export_format} to {out}")
    return out


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
