"""The callbacks of a training run: checkpoints after each epoch, the run's
clock and its time budget."""

import math
import os
import shutil
import time

import keras

from tfseg import hosts
from tfseg import runs
from tfseg.config import MONITOR
from tfseg.modeling import inner_optimizer

# The test report at the end of a run scores each test image twice (at the
# training size, and resized to its own size) and draws two figures: about
# this many times the validation time of as many images, plus this many
# seconds (measured on the shared sample, docs/BENCHMARKS.md).
REPORT_FACTOR = 3.0
REPORT_SECONDS = 5.0
# The share of a time budget left unplanned, for epochs slower than those
# timed.
BUDGET_SLACK = 0.03


class RunClock:
    """Wall seconds a run has taken: those `state.json` records from earlier
    processes (`"seconds"`, as of their last checkpoint) and this one's
    since `started` (a `time.monotonic()` reading)."""

    def __init__(self, state, started=None):
        self.before = float(state.get("seconds", 0.0))
        self.started = time.monotonic() if started is None else started

    def elapsed(self):
        return self.before + time.monotonic() - self.started


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: `last.keras`, `best.keras` when better, `state.json`
    (in that order, so the state never names an epoch not on disk).

    With a weight average (`--ema`), `last.keras` holds the trained weights
    and the average in its optimizer (it resumes exactly), and `best.keras`
    the average, which is what validation scored.
    """

    def __init__(self, run_dir, state, clock=None):
        super().__init__()
        self.run_dir = run_dir
        self.state = state
        self.clock = clock
        self.seconds = 0.0  # the last checkpoint's time

    def on_epoch_end(self, epoch, logs=None):
        began = time.perf_counter()
        score = (logs or {}).get(MONITOR)
        improved = score is not None and score > self.state.get("best_score", -math.inf)
        last = os.path.join(self.run_dir, runs.LAST)
        runs.save_model(self.model, last)
        if improved:
            best = os.path.join(self.run_dir, runs.BEST)
            if uses_ema(self.model):
                with AveragedWeights(self.model):
                    runs.save_model(self.model, best)
            else:  # the same model: a copy is cheaper than saving it again
                with runs.atomic_path(best) as temporary:
                    shutil.copyfile(last, temporary)
            self.state.update(best_score=float(score), best_epoch=epoch + 1)
        self.state["epochs_done"] = epoch + 1
        if self.clock is not None:
            self.state["seconds"] = round(self.clock.elapsed(), 3)
        runs.write_json(os.path.join(self.run_dir, runs.STATE), self.state)
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


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs (so to history.csv) and times
    validation; keeps a time budget (decisions by host 0's clock, so that
    several hosts decide together):

    - once the run's length is planned (`planned`), after each epoch it
      moves the plan's end, through `shorten(epochs)`, to what the recent
      pace fits, so the schedule still ends, decayed, at the last epoch that
      fits;
    - before that, it stops at the end of an epoch when the next epoch and
      the test report would not fit in what is left.

    Args:
        clock: the run's `RunClock`.
        budget_minutes: the whole run's budget, or `None`.
        images: `{split: images}` of the run (to foresee the test report's
            time from validation's).
        shorten: called with the new number of epochs when the plan moves.
    """

    def __init__(self, clock=None, budget_minutes=None, images=None, shorten=None):
        super().__init__()
        self.clock = clock or RunClock({})
        self.budget = budget_minutes * 60 if budget_minutes else None
        self.images = images or {}
        self.shorten = shorten
        self.planned = None
        self.cap = None  # the most epochs a plan may have (`--epochs`)
        self.epochs_done = None
        self.periods = []  # epoch begin to epoch begin (checkpoints included)
        self.val_seconds = []
        self.train_seconds = []
        self.last_begin = None

    def on_epoch_begin(self, epoch, logs=None):
        now = time.perf_counter()
        if self.last_begin is not None:
            self.periods.append(now - self.last_begin)
        self.start = self.last_begin = now
        self.test_start = None

    def on_test_begin(self, logs=None):
        self.test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        if self.test_start is not None:
            self.val_seconds.append(time.perf_counter() - self.test_start)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        self.train_seconds.append(seconds)
        self.epochs_done = epoch + 1  # on every host (state.json: host 0's)
        if logs is not None:
            logs["epoch_seconds"] = seconds
        if not self.budget:
            return
        if self.planned is not None and len(self.periods) >= 2:
            # Also at the last epoch fit was given: the plan may move past it.
            self.keep_plan(epoch + 1)
            if epoch + 1 >= self.planned:
                self.model.stop_training = True
            return
        if epoch + 1 >= self.params.get("epochs", math.inf):
            return
        # After the first epoch of a process (which compiles), nothing is
        # known of the pace: stop only once the budget is spent.
        needed = self.clock.elapsed()
        if self.periods:
            needed += self.periods[-1] + self.report_estimate()
        if hosts.first_host(needed > self.budget):
            print(
                f"time budget of {self.budget / 60:g} min: stopping after epoch "
                f"{epoch + 1}, as another epoch and the test report would end "
                f"after {needed / 60:.1f} min"
            )
            self.model.stop_training = True

    def epochs_that_fit(self, done, period):
        """`done` and as many more epochs of `period` seconds as fit in the
        budget, less `BUDGET_SLACK`, after the test report."""
        left = self.budget * (1 - BUDGET_SLACK) - self.clock.elapsed()
        left -= self.report_estimate()
        return done + max(math.floor(left / period), 0)

    def keep_plan(self, done):
        """Moves the plan's end to what the recent pace (the median of the
        last five epochs, the one that compiled left out) fits: earlier when
        epochs slow down, later when they speed up (at most `cap`)."""
        recent = sorted(self.periods[1:][-5:])
        fit = self.epochs_that_fit(done, recent[len(recent) // 2])
        if self.cap:
            fit = min(fit, self.cap)
        fit = hosts.first_host(max(fit, done))
        if fit == self.planned:
            return
        slower = fit < self.planned
        self.planned = fit
        print(
            f"time budget of {self.budget / 60:g} min: epochs have "
            f"{'slowed' if slower else 'sped up'}; the run (and its learning-rate "
            f"schedule) now ends at epoch {self.planned}"
        )
        if self.shorten:
            self.shorten(self.planned)

    def report_estimate(self):
        """Seconds the test report will take, from validation's pace (the
        first validation of a process compiles, so it is left out while
        there are others)."""
        timed = self.val_seconds[1:] or self.val_seconds
        if timed and self.images.get("val"):
            per_image = min(timed) / self.images["val"]
        elif self.train_seconds:  # no validation: inference ~3x training
            train_images = max(self.images.get("train", 1), 1)
            per_image = min(self.train_seconds) / train_images / 3
        else:
            return REPORT_SECONDS
        return REPORT_FACTOR * per_image * self.images.get("test", 0) + REPORT_SECONDS
