"""The model a `TrainConfig` describes: built, with its weights, compiled.

`build_model` turns the settings into builder arguments (an argument the
builder does not take, or ImageNet weights that cannot be had, stop with the
flags that fix it); `compile_model` adds `SegmentationAdamW` (warm-up,
cosine, the encoder's lower rate, the weight average), the loss and the IoU
metrics.
"""

import dataclasses
import math
import os
import re

import keras

from tfseg import losses
from tfseg import metrics
from tfseg.config import DEFAULT_MOBILENET_ALPHA
from tfseg.config import DESCRIBED_DATA_DEFAULTS
from tfseg.config import RECIPE_MODEL_ARGS
from tfseg.config import flag
from tfseg.config import format_size
from tfseg.models import create_model
from tfseg.models import encoders
from tfseg.models import model_arguments
from tfseg.models import model_defaults
from tfseg.models.blocks import InputSizeError
from tfseg.train.optimizer import SegmentationAdamW


def with_recipe_defaults(config):
    """`config` with what its recipe sets where flags did not: alpha 0.5 for
    MobileNetV2 encoders, and (recipe "tfseg") `RECIPE_MODEL_ARGS`."""
    changes = {}
    if config.alpha is None and configured_encoder(config) == "mobilenet_v2":
        changes["alpha"] = DEFAULT_MOBILENET_ALPHA
    if config.recipe == "tfseg":
        extra = RECIPE_MODEL_ARGS.get(config.model, {})
        missing = {k: v for k, v in extra.items() if k not in config.model_args}
        if missing:
            changes["model_args"] = {**config.model_args, **missing}
    return dataclasses.replace(config, **changes) if changes else config


def with_described_defaults(config, explicit, report=print):
    """`config` with `DESCRIBED_DATA_DEFAULTS` for the settings not in
    `explicit`, where its data is described (recipe "tfseg" only); the
    pets' runs are returned as they are."""
    if not config.description or config.recipe != "tfseg":
        return config
    changes = {
        name: value
        for name, value in DESCRIBED_DATA_DEFAULTS.items()
        if name not in explicit and getattr(config, name) != value
    }
    if changes:
        shown = ", ".join(f"{flag(name)} {value:g}" for name, value in changes.items())
        report(
            f"described data: {shown} (this recipe's defaults for a folder other "
            "than the pets; pass the flags to choose others)"
        )
    return dataclasses.replace(config, **changes)


def takes_default_windows(config):
    """Whether a run on a described folder trains on random windows of its
    frames where `--crop` is not given (`sizing.with_automatic_size`): with
    recipe "tfseg", for a model whose output is its input's size and that
    takes any multiple of 32 (every model but pix2pix, whose depth follows
    the size, and a valid-padding U-Net, whose output is smaller)."""
    if config.recipe != "tfseg" or not config.description:
        return False
    if config.model == "pix2pix":
        return False
    return config.model_args.get("padding", "same") != "valid"


def build_model(config):
    """Creates the configured model (compiled by `compile_model`)."""
    config = with_recipe_defaults(config)
    accepted = model_arguments(config.model)
    kwargs = {
        "input_shape": (*config.model_shape, 3),
        "num_classes": config.num_classes,
        **config.model_args,
    }
    for key in ("encoder", "alpha"):
        if getattr(config, key) is not None:
            kwargs[key] = getattr(config, key)
    if "encoder_weights" in accepted:
        kwargs["encoder_weights"] = resolve_encoder_weights(config)
        kwargs["freeze_encoder"] = config.freeze_encoder
    try:
        model = create_model(config.model, **kwargs)
    except TypeError as error:  # an argument the builder does not take
        raise ValueError(
            f"{error} --encoder, --alpha, --encoder-weights and --freeze-encoder "
            "have flags; pass any other as --model-arg KEY=VALUE."
        ) from error
    except OSError as error:
        if kwargs.get("encoder_weights") != "imagenet":
            raise
        raise ValueError(missing_weights_message(config, error)) from error
    except InputSizeError as error:  # a size the builder refuses: as flags
        name, size = "--image-size", config.image_size
        if config.crop:  # the model is built at the window's size
            name, size = "--crop", config.crop
        raise ValueError(size_message(name, size, error)) from error
    check_output_size(model, config)
    if config.crop:
        check_crop_model(model, config)
    return model


def check_output_size(model, config):
    """Raises `ValueError` for a model whose output is smaller than its
    input (a valid U-Net): training scores masks of the input's size, and a
    `--crop` model is saved at `--image-size` to score."""
    output = tuple(model.output_shape[1:3])
    if output != tuple(model.input_shape[1:3]):
        raise ValueError(
            f"tfseg train needs a model whose output is its input's size; "
            f"{config.model} here outputs {format_size(output)} for "
            f"{format_size(config.model_shape)} (valid convolutions: the original "
            'U-Net\'s copy-and-crop). Train it with padding "same" (the default), '
            "or in your own Keras code on centre-cropped masks, and segment with "
            "tfseg.models.predict_tiled."
        )


def check_crop_model(model, config):
    """Raises `ValueError` where a model trained on `--crop` windows cannot
    be saved at `--image-size` to score: the image size must be a multiple
    of its downsampling (`inference.size_multiple`; `check_output_size`
    comes first)."""
    from tfseg.inference import size_multiple

    multiple = math.lcm(*size_multiple(model))
    error = InputSizeError(
        "",
        (*config.image_shape, 3),
        lambda side: side % multiple == 0,
        f"that are multiples of {multiple}",
        config.model,
    )
    if any(not error.is_valid(side) for side in config.image_shape):
        raise ValueError(
            size_message("--image-size", config.image_size, error)
            + " (A model trained on --crop windows is saved and scored at "
            "--image-size.)"
        )


def size_message(name, size, error):
    """A builder's refusal of a size (an `InputSizeError`) as flag `name`
    takes it, with the nearest sizes (`--image-size 320x480 or 352x480`):
    both sides made valid, a square kept square."""
    heights, widths = error.valid_sides()
    height, width = error.input_shape[:2]
    if height == width:
        sizes = [format_size(side) for side in sorted(set(heights) | set(widths))]
    else:
        sizes = [format_size((h, w)) for h in heights for w in widths]
    flags = ", ".join(sizes[:-1]) + (" or " if len(sizes) > 1 else "") + sizes[-1]
    return (
        f"{name} {format_size(size)}: {error.model_name} needs "
        f"sides {error.requirement}: pass {name} {flags}."
    )


def missing_weights_message(config, error):
    """Which ImageNet file is missing, where Keras looked, and the flags."""
    url = re.search(r"https?://\S+?\.h5", str(error))
    name = os.path.basename(url.group(0)) if url else "the weights file"
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    path = os.path.join(home, "models", name)
    return (
        f"--encoder-weights {config.encoder_weights} loads ImageNet weights for "
        f"the {configured_encoder(config)} encoder from {path}, which "
        "is not there, and downloading it failed (no network?). Copy the file "
        "into that folder ($KERAS_HOME/models/), pass --encoder-weights "
        f"/path/to/{name}, or train from scratch with --encoder-weights none."
    )


def resolve_encoder_weights(config):
    """`encoder_weights` for the builder: "auto" -> ImageNet where it exists."""
    weights = config.encoder_weights
    if weights in (None, "none", "None"):
        return None
    if weights != "auto":
        return weights
    return None if configured_encoder(config) in (None, "unet") else "imagenet"


def configured_encoder(config):
    """`--encoder`, or the model's default encoder (`None` if it has none)."""
    return config.encoder or model_defaults(config.model).get("encoder")


def schedule_steps(config, steps_per_epoch, epochs=None):
    """`(warmup_steps, total_steps)` of `epochs` epochs (`config.epochs`
    where not given)."""
    epochs = config.epochs if epochs is None else epochs
    total_steps = max(epochs * steps_per_epoch, 1)
    warmup_steps = min(int(config.warmup_epochs * steps_per_epoch), total_steps - 1)
    return warmup_steps, total_steps


def make_schedule(config, steps_per_epoch, epochs=None):
    """Linear warm-up, then cosine decay to 1% over `epochs`: the schedule
    of runs made before `SegmentationAdamW`, kept to resume them."""
    warmup_steps, total_steps = schedule_steps(config, steps_per_epoch, epochs)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else config.learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=0.01,
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def encoder_layers(model, config):
    """Names of the layers of `model`'s pretrained encoder (those from the
    input to the encoder's deepest feature map); `[]` where the encoder
    trains from scratch, or the model has none."""
    encoder = configured_encoder(config)
    if resolve_encoder_weights(config) is None or encoder not in (
        encoders.APPLICATION_ENCODERS
    ):
        return []
    taps = encoders.APPLICATION_ENCODERS[encoder].taps.values()
    try:
        outputs = [model.get_layer(name).output for name in taps]
    except ValueError:  # not a model built on this encoder's layers
        return []
    encoder = keras.Model(model.inputs, outputs)
    return [layer.name for layer in encoder.layers if layer.weights]


def make_optimizer(model, config, steps_per_epoch):
    """`SegmentationAdamW` for `config`: warm-up and schedule over
    `config.epochs`, `config.encoder_lr_scale` on the pretrained encoder,
    weight averaging with `config.ema`."""
    warmup_steps, total_steps = schedule_steps(config, steps_per_epoch)
    scaled = encoder_layers(model, config) if config.encoder_lr_scale != 1 else []
    return SegmentationAdamW(
        config.learning_rate,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        schedule=config.schedule,
        encoder_layers=scaled,
        encoder_scale=config.encoder_lr_scale if scaled else 1.0,
        weight_decay=config.weight_decay,
        use_ema=config.ema > 0,
        ema_momentum=config.ema or 0.99,
    )


def compile_model(model, config, steps_per_epoch):
    """`make_optimizer`'s AdamW; the configured loss; IoU metrics."""
    model.compile(
        optimizer=make_optimizer(model, config, steps_per_epoch),
        loss=losses.get_loss(config.loss, ignore_class=config.ignore_class),
        metrics=metrics.training_metrics(
            config.class_names, ignore_class=config.ignore_class
        ),
    )


def inner_optimizer(model):
    """The model's optimizer, unwrapped from a loss-scale wrapper."""
    optimizer = model.optimizer
    return getattr(optimizer, "inner_optimizer", optimizer)


def set_schedule_length(model, config, steps_per_epoch, epochs=None):
    """Makes a compiled model's schedule end after `epochs` epochs
    (`config.epochs` where not given: a resumed run extended, or a time
    budget's plan)."""
    optimizer = inner_optimizer(model)
    if isinstance(optimizer, SegmentationAdamW):
        optimizer.set_total_steps(schedule_steps(config, steps_per_epoch, epochs)[1])
    else:  # a run made by an earlier tfseg
        optimizer.learning_rate = make_schedule(config, steps_per_epoch, epochs)
