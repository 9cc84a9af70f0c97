"""tfseg: semantic segmentation of Oxford-IIIT Pet with Keras 3.

Model builders (`tfseg.models`) need only Keras; the data pipeline and the
training command use TensorFlow. Importing `tfseg` itself imports neither:
`create_model` and `list_models` load Keras on first use, so the `tfseg`
command answers `--help` at once.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "__version__"]


def __getattr__(name):
    if name in ("create_model", "list_models"):
        return getattr(importlib.import_module("tfseg.models"), name)
    raise AttributeError(f"module 'tfseg' has no attribute {name!r}")
