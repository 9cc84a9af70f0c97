"""The optimizer of `tfseg train`: AdamW with its schedule inside, a length
that can change during a run, and a lower learning rate for a pretrained
encoder.

Keras 3 has no per-layer learning rate, and a `LearningRateSchedule`'s
length is a Python constant baked into the compiled train step. So
`SegmentationAdamW` computes its rate itself:

- linear warm-up from 0 to `learning_rate` over `warmup_steps`, then cosine
  decay to `final_fraction * learning_rate` at `total_steps` (or a constant
  rate with `schedule="constant"`);
- `total_steps` is an optimizer variable, saved with the run and read by
  the compiled step, so `--time-budget` sets the length after timing the
  first epochs, and `--resume --epochs N` stretches it, with no new
  compilation;
- the update of every variable of a layer in `encoder_layers` uses the rate
  times `encoder_scale` (weight decay keeps the undivided rate: with
  decoupled decay of 1e-4 the difference is negligible);
- with `use_ema`, the moving average of the weights is kept for validation
  and `best.keras`, but never written over the trained weights at the end
  of `fit` (`finalize_variable_values` does nothing), so `fit` may be
  called again, and `last.keras` resumes exactly.

No TensorFlow import: it runs on every Keras backend.
"""

import math

import keras
from keras import ops

SCHEDULES = ("cosine", "constant")


@keras.saving.register_keras_serializable(package="tfseg")
class SegmentationAdamW(keras.optimizers.AdamW):
    """AdamW with warm-up and cosine decay of a changeable length, and a
    learning-rate scale for the encoder's layers.

    Args:
        learning_rate: the peak rate (after warm-up). Defaults to `1e-3`.
        warmup_steps: steps of linear warm-up from 0. Defaults to `0`.
        total_steps: steps at which the cosine reaches its floor; change it
            later with `set_total_steps`. Defaults to `1`.
        final_fraction: the floor, as a fraction of the peak. Defaults to
            `0.01`.
        schedule: `"cosine"` or `"constant"` (the peak throughout, after
            any warm-up). Defaults to `"cosine"`.
        encoder_layers: names of the layers whose variables train at
            `encoder_scale` times the rate. Defaults to none.
        encoder_scale: the encoder's rate as a fraction of the decoder's.
            Defaults to `1.0`.
        **kwargs: `keras.optimizers.AdamW` arguments (`weight_decay`,
            `use_ema`, `ema_momentum`, ...).
    """

    def __init__(
        self,
        learning_rate=1e-3,
        warmup_steps=0,
        total_steps=1,
        final_fraction=0.01,
        schedule="cosine",
        encoder_layers=(),
        encoder_scale=1.0,
        name="segmentation_adamw",
        **kwargs,
    ):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")
        if not 0 < encoder_scale:
            raise ValueError(f"encoder_scale must be positive, not {encoder_scale}")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.warmup_steps = int(warmup_steps)
        self.initial_total_steps = max(int(total_steps), 1)
        self.final_fraction = float(final_fraction)
        self.schedule = schedule
        self.encoder_layers = tuple(encoder_layers)
        self.encoder_scale = float(encoder_scale)
        self._encoder_keys = frozenset()

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Keys, as the backends see variables in `update_step` (TensorFlow
        # passes its own variables there, without Keras paths).
        layers = frozenset(self.encoder_layers)
        self._encoder_keys = frozenset(
            self._var_key(variable)
            for variable in var_list
            if variable.path.split("/", 1)[0] in layers
        )
        self._total_steps = self.add_variable(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_total_steps),
            dtype="float32",
            name="total_steps",
        )

    @property
    def total_steps(self):
        """The schedule's length in steps (an int)."""
        if not self.built:
            return self.initial_total_steps
        return int(round(float(ops.convert_to_numpy(self._total_steps))))

    def set_total_steps(self, steps):
        """Makes the cosine end at `steps` (read by the compiled step)."""
        steps = max(int(steps), 1)
        self.initial_total_steps = steps
        if self.built:
            self._total_steps.assign(float(steps))

    def _get_current_learning_rate(self):
        peak = ops.cast(self._learning_rate, "float32")
        step = ops.cast(self.iterations, "float32")
        warmup = float(self.warmup_steps)
        ramp = peak * step / max(warmup, 1.0)
        if self.schedule == "constant":
            return ops.where(step < warmup, ramp, peak)
        total = self._total_steps if self.built else float(self.initial_total_steps)
        span = ops.maximum(ops.cast(total, "float32") - warmup, 1.0)
        progress = ops.clip((step - warmup) / span, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        decayed = peak * (self.final_fraction + (1.0 - self.final_fraction) * cosine)
        return ops.where(step < warmup, ramp, decayed)

    def learning_rate_at(self, step):
        """The rate of `step` as a float (for logs and tests)."""
        peak = float(ops.convert_to_numpy(self._learning_rate))
        if step < self.warmup_steps:
            return peak * step / max(self.warmup_steps, 1)
        if self.schedule == "constant":
            return peak
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return peak * (self.final_fraction + (1.0 - self.final_fraction) * cosine)

    def is_encoder_variable(self, variable):
        return self._var_key(variable) in self._encoder_keys

    def update_step(self, gradient, variable, learning_rate):
        if self.encoder_scale != 1.0 and self.is_encoder_variable(variable):
            learning_rate = learning_rate * self.encoder_scale
        super().update_step(gradient, variable, learning_rate)

    def finalize_variable_values(self, var_list):
        """Keeps the trained weights: the average is swapped in only to
        validate and to write `best.keras` (see `tfseg.train.callbacks`)."""

    def get_config(self):
        config = super().get_config()
        config.update(
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            final_fraction=self.final_fraction,
            schedule=self.schedule,
            encoder_layers=list(self.encoder_layers),
            encoder_scale=self.encoder_scale,
        )
        return config
