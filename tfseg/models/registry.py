"""The names of tfseg's models and encoders, and where each is built: pure
Python (no Keras), so the command line lists them and `tfseg --help`
answers without loading Keras.

This is the one home of both lists: `tfseg.models.create_model` builds
from `MODELS`, the encoders from `applications.APPLICATION_ENCODERS`, and the command
line's help, the training code and `tfseg compare` read them here.
"""

from tfseg.models.applications import APPLICATION_ENCODERS
from tfseg.models.applications import list_encoders

# name -> (module, builder, arguments fixed by the name)
MODELS = {
    "fcn32s": ("tfseg.models.fcn", "build_fcn", {"variant": "32s"}),
    "fcn16s": ("tfseg.models.fcn", "build_fcn", {"variant": "16s"}),
    "fcn8s": ("tfseg.models.fcn", "build_fcn", {"variant": "8s"}),
    "unet": ("tfseg.models.unet", "build_unet", {}),
    "mobilenet_unet": ("tfseg.models.mobilenet_unet", "build_mobilenet_unet", {}),
    "pix2pix": ("tfseg.models.pix2pix", "build_pix2pix", {}),
}

__all__ = ["MODELS", "list_encoders", "list_models", "pretrained_encoders"]


def list_models():
    """Returns the names `create_model` accepts, sorted."""
    return sorted(MODELS)


def pretrained_encoders():
    """The encoders with ImageNet weights (from `keras.applications`)."""
    return list(APPLICATION_ENCODERS)
