"""The checkpoint of a training run after each epoch, and the weight
average swapped in where it is scored or saved. (The run's clock and its
time budget are `tfseg.train.budget`.)"""

import math
import os
import shutil
import time

import keras

from tfseg import files
from tfseg import runs
from tfseg.config import MONITOR
from tfseg.train.modeling import inner_optimizer


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: `last.keras`, `best.keras` when better, `state.json`
    (in that order, so the state never names an epoch not on disk).

    With a weight average (`--ema`), `last.keras` holds the trained weights
    and the average in its optimizer (it resumes exactly), and `best.keras`
    the average, which is what validation scored.

    It keeps its own copy of the run's state (`state`, as `state.json`
    holds it): the state at the start is not changed.
    """

    def __init__(self, run_dir, state, clock=None):
        super().__init__()
        self.run_dir = run_dir
        self.state = dict(state)
        self.clock = clock
        self.seconds = 0.0  # the last checkpoint's time

    def record(self, **values):
        """Adds `values` to the state and writes `state.json`."""
        self.state.update(values)
        files.write_json(os.path.join(self.run_dir, runs.STATE), self.state)

    def on_epoch_end(self, epoch, logs=None):
        began = time.perf_counter()
        score = (logs or {}).get(MONITOR)
        improved = score is not None and score > self.state.get("best_score", -math.inf)
        last = os.path.join(self.run_dir, runs.LAST)
        files.save_model(self.model, last)
        if improved:
            best = os.path.join(self.run_dir, runs.BEST)
            if uses_ema(self.model):
                with AveragedWeights(self.model):
                    files.save_model(self.model, best)
            else:  # the same model: a copy is cheaper than saving it again
                with files.atomic_path(best) as temporary:
                    shutil.copyfile(last, temporary)
            self.state.update(best_score=float(score), best_epoch=epoch + 1)
        self.state["epochs_done"] = epoch + 1
        if self.clock is not None:
            self.state["seconds"] = round(self.clock.elapsed(), 3)
        self.record()
        self.seconds = time.perf_counter() - began


def uses_ema(model):
    if getattr(model, "optimizer", None) is None:
        return False
    return bool(getattr(inner_optimizer(model), "use_ema", False))


class AveragedWeights:
    """`with AveragedWeights(model):` the model holds its optimizer's
    weight average inside the block (nothing changes without `--ema`)."""

    def __init__(self, model):
        self.swap = None
        if uses_ema(model):
            self.swap = keras.callbacks.SwapEMAWeights()
            self.swap.set_model(model)

    def __enter__(self):
        if self.swap:
            self.swap._swap_variables()  # Keras's swap, tf.distribute-aware

    def __exit__(self, *exc_info):
        if self.swap:
            self.swap._swap_variables()
