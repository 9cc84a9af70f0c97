"""Segmentation models and the registry that builds them by name.

`create_model(name, **kwargs)` builds any registered model; `list_models()`
lists the names. The builders are plain functions returning functional
`keras.Model`s; they import only Keras and NumPy, so they run on every Keras
backend. The names live in `tfseg.models.registry` (pure Python); the
builders load with Keras on first use, so `list_models()` needs no Keras.
"""

import importlib
import inspect

from tfseg.models.registry import MODELS
from tfseg.models.registry import list_encoders
from tfseg.models.registry import list_models

# Imported on first use (they need Keras).
_LAZY = {
    "build_fcn": "tfseg.models.fcn",
    "build_mobilenet_unet": "tfseg.models.mobilenet_unet",
    "build_pix2pix": "tfseg.models.pix2pix",
    "build_unet": "tfseg.models.unet",
    "predict_tiled": "tfseg.models.unet",
    "count_macs": "tfseg.models.flops",
    "valid_unet_output_size": "tfseg.models.encoders",
    "valid_unet_sizes": "tfseg.models.encoders",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfseg.models' has no attribute {name!r}")


def model_arguments(name):
    """Returns the keyword arguments `create_model(name, ...)` accepts."""
    return list(model_defaults(name))


def model_defaults(name):
    """Returns the default value of each argument of `create_model(name, ...)`."""
    builder, fixed = _registry_entry(name)
    return {
        arg: parameter.default
        for arg, parameter in inspect.signature(builder).parameters.items()
        if arg not in fixed
    }


def create_model(name, /, **kwargs):
    """Builds a registered model by name.

    Args:
        name: one of `list_models()`.
        **kwargs: arguments of the model's builder (see `model_arguments`),
            e.g. `input_shape`, `num_classes`, `encoder`, `encoder_weights`.

    Returns:
        A `keras.Model` from images in 0..255 to float32 logits.

    Raises:
        ValueError: for an unknown name (listing the known ones) or an
            invalid argument value.
        TypeError: for an argument the model does not take (listing those
            it takes).

    Example:

    >>> model = create_model("unet", input_shape=(128, 128, 3), base_filters=16)
    >>> model.output_shape
    (None, 128, 128, 3)
    """
    # The one check of argument names: the builders' own signatures would
    # also reject an unknown name, but without listing the valid ones, and
    # an argument fixed by the name would clash with the registry's value.
    builder, fixed = _registry_entry(name)
    accepted = model_arguments(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        by_name = sorted(set(unknown) & set(fixed))
        hint = (
            f" {', '.join(by_name)} is set by the model name: to change it, "
            f"pick another name from {list_models()}."
            if by_name
            else ""
        )
        raise TypeError(
            f"Model {name!r} does not take the argument(s) {unknown}. It takes: "
            f"{accepted}.{hint}"
        )
    return builder(**fixed, **kwargs)


def _registry_entry(name):
    """`(builder, arguments fixed by the name)` of a registered model."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Available models: {list_models()}.")
    module, builder, fixed = MODELS[name]
    return getattr(importlib.import_module(module), builder), fixed


__all__ = [
    "build_fcn",
    "build_mobilenet_unet",
    "build_pix2pix",
    "build_unet",
    "count_macs",
    "create_model",
    "list_encoders",
    "list_models",
    "model_arguments",
    "model_defaults",
    "predict_tiled",
    "valid_unet_output_size",
    "valid_unet_sizes",
]
