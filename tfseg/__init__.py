"""tfseg: semantic segmentation with Keras 3.

Model builders (`tfseg.models`) need only Keras; the data pipeline and the
training command use TensorFlow. Importing `tfseg` itself imports neither:
`create_model` and `list_models` load Keras on first use, so the `tfseg`
command answers `--help` at once.

Once `tfseg` is imported, every `.keras` file tfseg writes loads with plain
`keras.models.load_model(path)`: the objects a checkpoint may name (the
losses, the IoU metrics, `SegmentationAdamW`) are registered with Keras as
soon as Keras is imported (at once if it already is). `model.keras` holds
none of them and loads without tfseg.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "register_keras_objects", "__version__"]

# The modules whose import registers tfseg's Keras objects (under the package
# name "tfseg", which saved files record: they load whatever module the
# classes live in now).
KERAS_OBJECT_MODULES = ("tfseg.losses", "tfseg.metrics", "tfseg.train.optimizer")


def __getattr__(name):
    if name in ("create_model", "list_models"):
        return getattr(importlib.import_module("tfseg.models"), name)
    raise AttributeError(f"module 'tfseg' has no attribute {name!r}")


def register_keras_objects():
    """Registers with Keras every tfseg object a saved `.keras` file may
    name (imports Keras)."""
    for module in KERAS_OBJECT_MODULES:
        importlib.import_module(module)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Runs `register_keras_objects` right after `keras` is first imported,
    so importing tfseg costs no Keras import (`tfseg --help` stays fast)."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once; and `find_spec` below skips it
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def execute_then_register(module):
            execute(module)
            try:
                register_keras_objects()
            except Exception as error:  # never break the user's `import keras`
                warnings.warn(
                    f"tfseg could not register its Keras objects ({error}); "
                    "load tfseg checkpoints with tfseg.files.load_model.",
                    stacklevel=2,
                )

        spec.loader.exec_module = execute_then_register
        return spec


if "keras" in sys.modules:
    register_keras_objects()
elif not any(isinstance(hook, _RegisterAfterKeras) for hook in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
