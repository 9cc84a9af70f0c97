"""Segmentation models and the registry that builds them by name.

`create_model(name, **kwargs)` builds any registered model; `list_models()`
lists the names. The builders are plain functions returning functional
`keras.Model`s; they import only Keras and NumPy, so they run on every Keras
backend.
"""

import inspect

from tfseg.models.encoders import list_encoders
from tfseg.models.encoders import valid_unet_output_size
from tfseg.models.encoders import valid_unet_sizes
from tfseg.models.fcn import build_fcn
from tfseg.models.flops import count_macs
from tfseg.models.mobilenet_unet import build_mobilenet_unet
from tfseg.models.pix2pix import build_pix2pix
from tfseg.models.unet import build_unet
from tfseg.models.unet import predict_tiled

# name -> (builder, arguments fixed by the name)
_REGISTRY = {
    "fcn32s": (build_fcn, {"variant": "32s"}),
    "fcn16s": (build_fcn, {"variant": "16s"}),
    "fcn8s": (build_fcn, {"variant": "8s"}),
    "unet": (build_unet, {}),
    "mobilenet_unet": (build_mobilenet_unet, {}),
    "pix2pix": (build_pix2pix, {}),
}


def list_models():
    """Returns the names `create_model` accepts, sorted."""
    return sorted(_REGISTRY)


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
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Available models: {list_models()}.")
    return _REGISTRY[name]


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
