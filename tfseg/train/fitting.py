"""The fit loop of a run: `model.fit` from the first unfinished epoch to the
run's planned end, a checkpoint after each epoch, and Ctrl-C kept.

With `--time-budget`, the loop times the first epochs, asks
`tfseg.train.budget` how many fit, and makes that the run's end (the
schedule ends there too, and `config.json`/`state.json` record it, so a
resumed run keeps it). The plan may later move either way, past the end
`fit` was given included: then `fit` is called again.
"""

import copy
import importlib.util
import os
import sys
import warnings

import keras

from tfseg import files
from tfseg import runs
from tfseg.config import MONITOR
from tfseg.train import budget
from tfseg.train import hosts
from tfseg.train.callbacks import RunCheckpoint
from tfseg.train.modeling import set_schedule_length


class FitLoop:
    """Trains one run's model to its planned end; `run()` returns the run's
    state (`state.json`'s content) when it ends.

    Args:
        model: the compiled model (new, or resumed from `last.keras`).
        start: the run's `tfseg.train.start.RunStart`.
        batches: `(train, validation)` batches; validation may be `None`.
        clock: the run's `tfseg.train.budget.RunClock`.
        steps: training steps per epoch (for the schedule's length).
        images: `{split: images}` (the budget times the test report by it).
        record: `config.json`'s content (a copy is kept and rewritten when a
            time budget plans the run).
    """

    def __init__(self, model, start, batches, clock, steps, images, record):
        self.model = model
        self.start = start
        self.config = start.config
        self.train_data, self.val_data = batches
        self.steps = steps
        self.record = copy.deepcopy(record)
        self.epochs = self.config.epochs  # the run's end, as planned now
        self.timer = budget.EpochTimer(
            clock, self.config.time_budget, images, on_replan=self.plan
        )
        self.timer.planned = start.state.get("fitted_epochs")
        self.timer.cap = start.epochs_cap
        self.csv_logger = self.checkpoint = None
        self.callbacks = self.make_callbacks(clock)

    def make_callbacks(self, clock):
        """The timer first (its `epoch_seconds` reaches the CSV), then the
        writing host's log and checkpoint, the weight average's swap (before
        validation scores), TensorBoard and early stopping."""
        config, run_dir = self.config, self.start.run_dir
        callbacks = [self.timer]
        if hosts.is_writer():
            runs.trim_history(run_dir, self.start.epochs_done)
            self.csv_logger = keras.callbacks.CSVLogger(
                os.path.join(run_dir, runs.HISTORY),
                append=self.start.epochs_done > 0,
            )
            self.checkpoint = RunCheckpoint(run_dir, self.start.state, clock)
            callbacks += [self.csv_logger, self.checkpoint]
        if config.ema:  # validation scores the weight average
            callbacks.insert(0, keras.callbacks.SwapEMAWeights())
        if (
            hosts.is_writer()
            and keras.backend.backend() == "tensorflow"
            and importlib.util.find_spec("tensorboard")
        ):
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")))
        if config.early_stopping:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    MONITOR, patience=config.early_stopping, mode="max"
                )
            )
        return callbacks

    @property
    def epochs_done(self):
        """Epochs finished, on every host (the checkpoint is host 0's)."""
        done = self.timer.epochs_done
        return self.start.epochs_done if done is None else done

    @property
    def state(self):
        return self.checkpoint.state if self.checkpoint else dict(self.start.state)

    def run(self):
        planning = budget.needs_plan(self.config, self.start.state)
        if self.epochs_done >= self.epochs and not planning:
            return self.state
        try:
            if planning:
                self.calibrate()
            # The plan may move past the end `fit` was given: then fit again.
            while self.epochs_done < self.epochs:
                end = self.epochs
                self.fit_until(end)
                if self.epochs_done < end:
                    break  # stopped early (the budget, early stopping)
        except KeyboardInterrupt:
            self.keep_interrupted()
        finally:
            # Keras closes the log at the end of training, which a failed
            # epoch (a full disk, say) never reaches.
            log = self.csv_logger and self.csv_logger.csv_file
            if log and not log.closed:
                log.close()
        return self.state

    def fit_until(self, epochs):
        if self.csv_logger:
            self.csv_logger.append = self.epochs_done > 0
        with warnings.catch_warnings():
            # Keras's IoU metrics cast labels to int64, which JAX (without
            # x64) makes int32, saying so each fit: class ids lose nothing.
            warnings.filterwarnings(
                "ignore", "Explicitly requested dtype int64", UserWarning
            )
            self.model.fit(
                self.train_data,
                validation_data=self.val_data,
                epochs=epochs,
                initial_epoch=self.epochs_done,
                callbacks=self.callbacks,
                shuffle=False,  # the batches shuffle, seeded
                verbose=1 if sys.stdout.isatty() else 2,
            )

    def calibrate(self):
        """Times `CALIBRATION_EPOCHS` epochs, then plans the run's length."""
        done, cap = self.epochs_done, self.start.epochs_cap
        calibration = done + budget.CALIBRATION_EPOCHS
        if cap:
            calibration = min(calibration, cap)
        print(
            f"time budget of {self.config.time_budget:g} min: timing "
            f"{calibration - done} epoch(s) to fit the run's length"
        )
        self.fit_until(calibration)
        stopped = self.epochs_done < calibration or self.model.stop_training
        # An epoch: its training and validation, and its checkpoint (not the
        # end of `fit`, which only the timed epochs pay).
        period = self.timer.train_seconds[-1] + (
            self.checkpoint.seconds if self.checkpoint else 0
        )
        epochs = budget.plan_epochs(self.config, self.timer, period, stopped, cap)
        self.plan(epochs)
        self.timer.planned = epochs

    def plan(self, epochs):
        """Makes `epochs` the run's end: the schedule ends there, and
        `config.json` and `state.json` say so (a resumed run keeps it)."""
        self.epochs = epochs
        set_schedule_length(self.model, self.config, self.steps, epochs)
        self.record["config"]["epochs"] = epochs
        if hosts.is_writer():
            files.write_json(os.path.join(self.start.run_dir, runs.CONFIG), self.record)
            self.checkpoint.record(fitted_epochs=epochs)

    def keep_interrupted(self):
        """Ctrl-C: the model as it is goes to `interrupted.keras` (the
        finished epochs are in `last.keras`); exits 130."""
        if not hosts.is_writer():
            raise SystemExit(130) from None
        run_dir = self.start.run_dir
        files.save_model(self.model, os.path.join(run_dir, runs.INTERRUPTED))
        print(
            f"\nInterrupted after {self.state['epochs_done']} finished "
            f"epoch(s). Checkpoints are in {run_dir}; continue with:\n"
            f"  tfseg train --resume {run_dir}"
        )
        raise SystemExit(130) from None
