"""The callbacks of a training run: checkpoints after each epoch, epoch
timing and the time budget."""

import math
import os
import time

import keras

from tfseg import hosts
from tfseg import runs
from tfseg.config import MONITOR


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: `last.keras`, `best.keras` when better, `state.json`
    (in that order, so the state never names an epoch not on disk)."""

    def __init__(self, run_dir, state):
        super().__init__()
        self.run_dir = run_dir
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        score = (logs or {}).get(MONITOR)
        improved = score is not None and score > self.state.get("best_score", -math.inf)
        runs.save_model(self.model, os.path.join(self.run_dir, runs.LAST))
        if improved:
            runs.save_model(self.model, os.path.join(self.run_dir, runs.BEST))
            self.state.update(best_score=float(score), best_epoch=epoch + 1)
        self.state["epochs_done"] = epoch + 1
        runs.write_json(os.path.join(self.run_dir, runs.STATE), self.state)


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs (so to history.csv); stops the run
    once `budget_minutes` of training have passed, at an epoch's end (by
    host 0's clock, so that several hosts stop together)."""

    def __init__(self, budget_minutes=None):
        super().__init__()
        self.budget = budget_minutes * 60 if budget_minutes else None
        self.spent = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        self.spent += seconds
        if logs is not None:
            logs["epoch_seconds"] = seconds
        if self.budget and hosts.first_host(self.spent >= self.budget):
            print(
                f"time budget of {self.budget / 60:g} min reached after "
                f"epoch {epoch + 1}"
            )
            self.model.stop_training = True
