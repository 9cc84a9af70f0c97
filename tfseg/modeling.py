"""The model a `TrainConfig` describes: built, with its weights, compiled.

`build_model` turns the settings into builder arguments (an argument the
builder does not take, or ImageNet weights that cannot be had, stop with the
flags that fix it); `compile_model` adds AdamW on `make_schedule`, the loss
and the IoU metrics.
"""

import os
import re

import keras

from tfseg import losses
from tfseg import metrics
from tfseg.models import create_model
from tfseg.models import model_arguments
from tfseg.models import model_defaults


def build_model(config):
    """Creates the configured model (compiled by `compile_model`)."""
    accepted = model_arguments(config.model)
    kwargs = {
        "input_shape": (config.image_size, config.image_size, 3),
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
        return create_model(config.model, **kwargs)
    except TypeError as error:  # an argument the builder does not take
        raise ValueError(
            f"{error} --encoder, --alpha, --encoder-weights and --freeze-encoder "
            "have flags; pass any other as --model-arg KEY=VALUE."
        ) from error
    except OSError as error:
        if kwargs.get("encoder_weights") != "imagenet":
            raise
        raise ValueError(missing_weights_message(config, error)) from error


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


def make_schedule(config, steps_per_epoch):
    """Linear warm-up, then cosine decay to 1% over `config.epochs`."""
    total_steps = max(config.epochs * steps_per_epoch, 1)
    warmup_steps = min(int(config.warmup_epochs * steps_per_epoch), total_steps - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else config.learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=0.01,
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def compile_model(model, config, steps_per_epoch):
    """AdamW on `make_schedule`; the configured loss; IoU metrics."""
    optimizer = keras.optimizers.AdamW(
        make_schedule(config, steps_per_epoch), weight_decay=config.weight_decay
    )
    model.compile(
        optimizer=optimizer,
        loss=losses.get_loss(config.loss),
        metrics=metrics.training_metrics(config.num_classes),
    )
