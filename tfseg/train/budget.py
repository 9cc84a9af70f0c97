"""The time budget of a run (`--time-budget MIN`), in one place.

A budgeted run's length is planned in three moves, all by host 0's clock
so that several hosts decide together:

1. the first `CALIBRATION_EPOCHS` epochs are timed (the first compiles);
2. `plan_epochs` sets the run's length to the epochs that fit in what is
   left of the budget (less `BUDGET_SLACK`) after the test report (timed
   from validation's pace, `EpochTimer.report_estimate`), and the
   learning-rate schedule is made to end there;
3. after each later epoch, `EpochTimer.follow_pace` moves that end to what
   the recent pace fits (the median of the last five epochs, the compiling
   one left out): earlier when epochs slow down, later when they speed up,
   never past `--epochs`.

Before a plan exists (no budget fitted yet, or a resumed process's first
epoch), `EpochTimer` stops at the end of an epoch when another epoch and
the test report would not fit. The wall clock (`RunClock`) counts from the
command's start, imports included, and carries over a resume.
"""

import math
import time

import keras

from tfseg.train import hosts

# With `--time-budget`, epochs timed before the run's length is planned: the
# first (which compiles) and one at full pace.
CALIBRATION_EPOCHS = 2
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


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs (so to history.csv) and times
    validation; keeps a time budget (decisions by host 0's clock, so that
    several hosts decide together):

    - once the run's length is planned (`planned`), after each epoch it
      moves the plan's end, through `on_replan(epochs)`, to what the recent
      pace fits, so the schedule still ends, decayed, at the last epoch that
      fits;
    - before that, it stops at the end of an epoch when the next epoch and
      the test report would not fit in what is left.

    Args:
        clock: the run's `RunClock`.
        budget_minutes: the whole run's budget, or `None`.
        images: `{split: images}` of the run (to foresee the test report's
            time from validation's).
        on_replan: called with the new number of epochs when the plan's
            end moves (either way).
    """

    def __init__(self, clock=None, budget_minutes=None, images=None, on_replan=None):
        super().__init__()
        self.clock = clock or RunClock({})
        self.budget = budget_minutes * 60 if budget_minutes else None
        self.images = images or {}
        self.on_replan = on_replan
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
            self.follow_pace(epoch + 1)
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

    def follow_pace(self, done):
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
        if self.on_replan:
            self.on_replan(self.planned)

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


def needs_plan(config, state):
    """Whether the run's length is still to be planned for its time budget
    (`state` is `state.json`'s, which records the plan once made)."""
    return bool(config.time_budget) and "fitted_epochs" not in state


def plan_epochs(config, timer, period, stopped, cap=None):
    """The run's length in epochs: those done, and as many more epochs of
    `period` seconds as fit in the budget's minutes left after the test
    report (none if `stopped`; at most `cap`, the `--epochs` given)."""
    done = timer.epochs_done  # the timed epochs have ended
    reserve = timer.report_estimate()
    more = 0 if stopped else timer.epochs_that_fit(done, period) - done
    more = hosts.first_host(more)  # every host trains as many epochs
    epochs = done + more
    if cap:
        epochs = min(epochs, cap)
    if more == 0:
        print(
            f"time budget of {config.time_budget:g} min: no time for more "
            f"epochs after {done} (an epoch takes {period:.1f} s, the test "
            f"report about {reserve:.0f} s), so the learning rate did not "
            "decay; give more minutes for a better model"
        )
    else:
        print(
            f"time budget of {config.time_budget:g} min: {epochs} epochs fit "
            f"({period:.1f} s an epoch, about {reserve:.0f} s for the test "
            f"report); the learning-rate schedule now ends at epoch {epochs}"
        )
    return epochs
