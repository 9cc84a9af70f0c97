"""Training: `tfseg train`, as a recipe of named steps.

ARCHITECTURE. `recipe.train(config)` is the one entry; read it top to bottom.
Its steps each live in one module here and return what they decide:
`start` (a new run's folder, or the rules of `--resume`), `devices`
(precision and `tf.distribute`/`keras.distribution`), `hosts` (JAX's
runtime across hosts), `modeling` (the model a `TrainConfig` describes, its
loss, metrics and optimizer), `optimizer` (`SegmentationAdamW`), `fitting`
(the fit loop, Ctrl-C), `callbacks` (the checkpoint after each epoch) and
`budget` (the time budget, in one place). The data come from `tfseg.data`,
the run folder's files from `tfseg.runs`, the test report from
`tfseg.evaluate`. Importing this package imports no Keras.
"""


def train(config, explicit=None, started=None):
    """`tfseg.train.recipe.train` (imported on call: it loads Keras)."""
    from tfseg.train import recipe

    return recipe.train(config, explicit=explicit, started=started)
