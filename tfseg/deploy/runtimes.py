"""Exported models run through the runtime a user deploys with.

`load_deployed(path)` opens a `.tflite` file with the LiteRT interpreter
(`ai-edge-litert`, or TensorFlow's own where that is what is installed), an
`.onnx` file with onnxruntime, a SavedModel folder with TensorFlow, or a
`.keras` file with Keras. What it returns looks like a Keras model to
`tfseg.evaluate` and `tfseg.deploy.predict` (`input_shape`, `output_shape`, and a
call from float images in 0..255 to float32 logits), so exported files are
scored and used by the very code that scores and uses a run's model.

A file written by `tfseg export` has a sidecar, `FILE.json` (`tfseg.json`
inside a SavedModel folder), recording its input, classes (names, colours
and the dataset's description), quantization and calibration data
(`read_metadata`); a file without one is read as is. `class_table` gives
the names and drawing colours of a run's or an exported model's classes.
"""

import dataclasses
import os
import warnings

import numpy as np

from tfseg import files
from tfseg import runs

# The sidecar of an exported file: beside a file, inside a SavedModel folder.
SIDECAR_IN_FOLDER = "tfseg.json"
KINDS = {".tflite": "tflite", ".onnx": "onnx", ".keras": "keras"}


def model_kind(path):
    """`"tflite"`, `"onnx"`, `"keras"` or `"savedmodel"` for a model path;
    `RunError` for anything else."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "savedmodel"
    elif os.path.isfile(path) and os.path.splitext(path)[1] in KINDS:
        return KINDS[os.path.splitext(path)[1]]
    if not os.path.exists(path):
        raise runs.RunError(
            f"{path!r} does not exist. Pass a run folder that `tfseg train` made "
            "(runs/<time>_<model>) or a model file that `tfseg export` wrote."
        )
    raise runs.RunError(
        f"{path!r} is not a model tfseg can run: expected a run folder, a "
        ".tflite or .onnx file, a SavedModel folder (with saved_model.pb) or "
        "a .keras file (`tfseg export` writes the first three)."
    )


def sidecar_path(path):
    """Where `tfseg export` records what an exported model is."""
    if os.path.isdir(path):
        return os.path.join(path, SIDECAR_IN_FOLDER)
    return path + ".json"


def read_metadata(path):
    """The sidecar of an exported model, or `{}` where there is none."""
    return files.read_json(sidecar_path(path), default={})


class DeployedModel:
    """An exported model as `tfseg.evaluate` sees a Keras model.

    Attributes:
        path: the model file or folder.
        kind: `"tflite"`, `"onnx"`, `"savedmodel"` or `"keras"`.
        metadata: its sidecar (`{}` if none).
        runtime: what runs it, with its version (e.g. `"ai-edge-litert 2.3.0"`).
        input_shape, output_shape: `(None, H, W, 3)` and `(None, H, W, C)`.
    """

    def __init__(self, path, kind, runtime, input_size, num_classes):
        self.path = os.path.abspath(path)
        self.kind = kind
        self.runtime = runtime
        self.metadata = read_metadata(path)
        self.argmax_output = self.metadata.get("output") == "argmax"
        num_classes = self.metadata.get("num_classes", num_classes)
        if not all(isinstance(side, (int, np.integer)) for side in input_size):
            # A runtime that leaves the sides open: the sidecar's (H, W).
            recorded = self.metadata.get("input", {}).get("shape", [])
            if len(recorded) != 4:
                raise runs.RunError(
                    f"{path!r} takes images of an open size {tuple(input_size)} "
                    "and has no sidecar saying the size it was trained at. "
                    "Export it with `tfseg export`, which records it."
                )
            input_size = recorded[1:3]
        input_size = tuple(int(side) for side in input_size)
        self.input_shape = (None, *input_size, 3)
        self.output_shape = (None, *input_size, num_classes)

    def __call__(self, images, training=False):
        """Float32 logits `(N, H, W, C)` of float images in 0..255 (a model
        that outputs class ids gives their one-hot encoding)."""
        del training  # exported models are inference graphs
        images = np.asarray(images, np.float32)
        outputs = self.run(images)
        if self.argmax_output:
            return np.eye(self.output_shape[-1], dtype=np.float32)[outputs]
        return np.asarray(outputs, np.float32)

    def run(self, images):
        """The model's own output for a float32 batch."""
        raise NotImplementedError

    def describe(self):
        """What a report records of the model."""
        return {
            "path": self.path,
            "format": self.kind,
            "runtime": self.runtime,
            "quantize": self.metadata.get("quantize"),
            "output": self.metadata.get("output", "logits"),
        }


class TFLiteModel(DeployedModel):
    """A `.tflite` file in the LiteRT interpreter, one image per invoke (as
    on a phone). A uint8 input (an int8 export) takes the pixels through
    its quantization, which `tfseg export` makes scale 1, zero point 0."""

    def __init__(self, path, threads=None):
        interpreter_class, runtime = litert_interpreter()
        try:
            with warnings.catch_warnings():  # TensorFlow's: deprecated there
                warnings.filterwarnings("ignore", ".*tf.lite.Interpreter is deprecated")
                self.interpreter = interpreter_class(
                    model_path=path, num_threads=threads
                )
        except (ValueError, RuntimeError) as error:
            raise runs.RunError(
                f"{path!r} cannot be read as a TFLite model ({error})."
            ) from error
        source = self.interpreter.get_input_details()[0]
        self.interpreter.resize_tensor_input(source["index"], [1, *source["shape"][1:]])
        self.interpreter.allocate_tensors()
        self.source = self.interpreter.get_input_details()[0]
        self.target = self.interpreter.get_output_details()[0]
        super().__init__(
            path,
            "tflite",
            runtime,
            tuple(self.source["shape"][1:3]),
            self.target["shape"][-1] if len(self.target["shape"]) == 4 else 3,
        )

    def run(self, images):
        return np.concatenate([self.invoke(image[None]) for image in images])

    def invoke(self, image):
        scale, zero_point = self.source["quantization"]
        if scale:
            info = np.iinfo(self.source["dtype"])
            image = np.clip(np.round(image / scale + zero_point), info.min, info.max)
        self.interpreter.set_tensor(
            self.source["index"], image.astype(self.source["dtype"])
        )
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self.target["index"])
        scale, zero_point = self.target["quantization"]
        if scale and not self.argmax_output:
            return (output.astype(np.float32) - zero_point) * scale
        return output


def litert_interpreter():
    """`(Interpreter class, runtime name)`: ai-edge-litert's, else
    TensorFlow's (deprecated there, but the same kernels)."""
    try:
        from importlib.metadata import version

        from ai_edge_litert import interpreter

        return interpreter.Interpreter, f"ai-edge-litert {version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        import tensorflow as tf
    except ImportError:
        raise ValueError(
            "Running a .tflite file needs the LiteRT interpreter: "
            "`python3 -m pip install ai-edge-litert` (or TensorFlow)."
        ) from None
    return tf.lite.Interpreter, f"tensorflow {tf.__version__} tf.lite.Interpreter"


class OnnxModel(DeployedModel):
    """An `.onnx` file in onnxruntime's CPU session."""

    def __init__(self, path, threads=None):
        try:
            import onnxruntime
        except ImportError:
            raise ValueError(
                "Running an .onnx file needs onnxruntime: "
                "`python3 -m pip install onnxruntime`."
            ) from None
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                path, options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime's own exception types
            raise runs.RunError(
                f"{path!r} cannot be read as an ONNX model ({error})."
            ) from error
        source = self.session.get_inputs()[0]
        target = self.session.get_outputs()[0]
        self.input_name = source.name
        super().__init__(
            path,
            "onnx",
            f"onnxruntime {onnxruntime.__version__}",
            tuple(source.shape[1:3]),
            target.shape[-1] if isinstance(target.shape[-1], int) else 3,
        )

    def run(self, images):
        return self.session.run(None, {self.input_name: images})[0]


class SavedModelModel(DeployedModel):
    """A SavedModel folder from `tfseg export`, its `serve` signature run
    by TensorFlow."""

    def __init__(self, path, threads=None):
        del threads  # TensorFlow's threads are set per process
        try:
            import tensorflow as tf
        except ImportError:
            raise ValueError(
                "Running a SavedModel needs TensorFlow: `python3 -m pip install "
                "tensorflow`, or export to .tflite or .onnx instead."
            ) from None
        self.loaded = tf.saved_model.load(path)
        if not hasattr(self.loaded, "serve"):
            raise runs.RunError(
                f"{path!r} has no `serve` endpoint: export it with `tfseg export "
                "--format savedmodel` (or Keras's model.export)."
            )
        spec = self.loaded.serve.input_signature[0]
        probe = self.run(np.zeros((1, *spec.shape[1:]), np.float32))
        super().__init__(
            path,
            "savedmodel",
            f"tensorflow {tf.__version__}",
            tuple(spec.shape[1:3]),
            probe.shape[-1] if probe.ndim == 4 else 3,
        )

    def run(self, images):
        return self.loaded.serve(images).numpy()


class KerasFileModel(DeployedModel):
    """A `.keras` file (e.g. a run's `model.keras` copied elsewhere)."""

    def __init__(self, path, threads=None):
        del threads
        import keras

        self.model = files.load_model(path, compile=False)
        super().__init__(
            path,
            "keras",
            f"keras {keras.__version__} ({keras.backend.backend()})",
            tuple(self.model.input_shape[1:3]),
            self.model.output_shape[-1],
        )

    def run(self, images):
        import keras

        return keras.ops.convert_to_numpy(self.model(images, training=False))


RUNTIMES = {
    "tflite": TFLiteModel,
    "onnx": OnnxModel,
    "savedmodel": SavedModelModel,
    "keras": KerasFileModel,
}


def load_deployed(path, threads=None):
    """An exported model, ready to call; see the module docstring.

    Args:
        path: a `.tflite`, `.onnx` or `.keras` file, or a SavedModel folder.
        threads: CPU threads of the runtime (LiteRT, onnxruntime); `None`
            leaves the runtime's default.

    Raises:
        RunError: a path that is not such a model, or cannot be read.
        ValueError: the runtime it needs is not installed (saying what to
            install).
    """
    path = os.fspath(path)
    return RUNTIMES[model_kind(path)](path, threads=threads)


@dataclasses.dataclass(frozen=True)
class ClassTable:
    """The names and drawing colours of a model's classes.

    Attributes:
        names: the name of each class id.
        colors: `(r, g, b)` per class, or `None` (`tfseg.visualize` picks
            the pets' table).
        unpainted: class ids an overlay leaves bare: `None` (the default of
            `tfseg.visualize`: the pets' background) or `()` (described
            data: every class is painted).
    """

    names: tuple
    colors: tuple = None
    unpainted: tuple = None

    def drawing(self):
        """`{"colors": ..., "unpainted": ...}`, the keywords of
        `tfseg.visualize.overlay_with_legend` and `palette_image`."""
        return {"colors": self.colors, "unpainted": self.unpainted}


def class_table(config, model):
    """The classes of a run's model (`config`, its `TrainConfig`), or of an
    exported model alone (`config=None`: the names, colours and dataset
    description its sidecar records).

    An exported model without recorded classes inside a run folder (the
    run's own `model.keras`) has the run's. Names of another count than the
    model's outputs (a sidecar of another model), or none found, give
    `class_names_for` the model's output count, drawn as the pets' are.
    Data described without colours gets a distinct colour per class, every
    class painted.

    Args:
        config: a `TrainConfig`, or `None` for an exported model.
        model: a Keras model or a `DeployedModel` (`output_shape[-1]` is its
            class count).

    Returns:
        A `ClassTable`.
    """
    from tfseg.metrics import class_names_for

    count = model.output_shape[-1]
    metadata = getattr(model, "metadata", None) or {}
    if config is None and not metadata.get("class_names"):
        folder = os.path.dirname(getattr(model, "path", None) or "")
        config = runs.read_config(folder)[0] if folder and is_run(folder) else None
    if config is not None:
        names, colors = config.class_names, config.class_colors
        described = bool(config.description)
    else:
        dataset = metadata.get("dataset") or {}
        names = metadata.get("class_names") or dataset.get("classes") or ()
        colors = metadata.get("colors") or dataset.get("colors")
        described = bool(dataset)
    if len(names) != count:
        names, colors, described = class_names_for(count), None, False
    if colors is not None and len(colors) != count:
        colors = None
    if described and colors is None:
        colors = generated_colours(count)
    return ClassTable(
        names=tuple(str(name) for name in names),
        colors=None if colors is None else tuple(tuple(map(int, c)) for c in colors),
        unpainted=() if described else None,
    )


def generated_colours(count):
    """`count` distinct colours, none of them the pets' bare background:
    the colour-wheel walk of `tfseg.visualize.class_colours`."""
    from tfseg import visualize

    walk = visualize.class_colours(max(count, len(visualize.CLASS_COLOURS) + 1))
    return walk[:count].astype(int).tolist()


def is_run(path):
    """Whether `path` is a run folder (it has a config.json)."""
    return os.path.isfile(os.path.join(path, runs.CONFIG))


def load_run_or_model(path):
    """`(config or None, model)`: a run folder's config and Keras model, or
    an exported model (`load_deployed`) with no config."""
    if is_run(path):
        return runs.open_run(path)
    return None, load_deployed(path)
