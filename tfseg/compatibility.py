"""Whether a model and the data it is given fit: input size and classes.

Used by `tfseg evaluate` (a run or an exported model on its own data or
another folder), before any data is read.
"""

import dataclasses

from tfseg import runs
from tfseg.config import TrainConfig
from tfseg.config import format_size
from tfseg.config import image_shape
from tfseg.metrics import class_names_for


def exported_config(model):
    """The `TrainConfig` an exported model alone implies: its input size,
    and the classes its sidecar records (else `class_names_for` its
    output count, marked unnamed: `names_known`)."""
    height, width = model.input_shape[1:3]
    size = height if height == width else (height, width)
    outputs = model.output_shape[-1]
    config = TrainConfig(image_size=size, binary=outputs == 2)
    metadata = getattr(model, "metadata", None) or {}
    if metadata.get("dataset"):
        return dataclasses.replace(config, description=metadata["dataset"]), True
    if outputs not in (2, 3):  # not the pets: classes by number
        names = list(class_names_for(outputs))
        return dataclasses.replace(config, description={"classes": names}), False
    return config, False


def check_input_size(model, expected, requested=None):
    """Raises `RunError` unless the model takes images of `expected` (a side
    or `(height, width)`), and `requested`, the `--image-size` given, agrees."""
    size = tuple(model.input_shape[1:3])
    for wanted, what in ((requested, "--image-size"), (expected, "the data")):
        if wanted is not None and size != image_shape(wanted):
            raise runs.RunError(
                f"The model takes {size[0]}x{size[1]} images, but {what} is "
                f"{format_size(wanted)}: pass --image-size {format_size(size)} (or "
                "the model exported from a run of that size)."
            )


def check_same_classes(own, other, data, names_known=True):
    """Raises `RunError` when the data `data` has other classes than the
    model was trained on (`own`), naming both; with `names_known=False`
    (an exported model without a sidecar) only the counts must agree."""
    if own.class_names == other.class_names:
        return
    if len(own.class_names) == len(other.class_names):
        if not names_known:
            return
        print(
            f"note: {data} names its {other.num_classes} classes "
            f"{', '.join(other.class_names)}; the run named them "
            f"{', '.join(own.class_names)}. Scored by id, named as the data names them."
        )
        return
    raise runs.RunError(
        f"The model was trained on {own.num_classes} classes "
        f"({_listed(own.class_names)}) but {data} has {other.num_classes} "
        f"({_listed(other.class_names)}). Score it on data of the same classes, "
        "or pass --dataset FILE with the run's classes for this folder."
    )


def _listed(names, shown=6):
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
