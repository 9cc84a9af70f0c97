"""Where a run starts: a new run folder, or the resumed run's saved state.

The resume rules, kept here and nowhere else:

- `--resume RUN` takes the run's saved configuration; flags given with it
  must agree with it, but for `config.RESUMABLE_FIELDS` (how long it
  trains, and where its hosts meet);
- `--epochs N` may only extend a run (N at least the epochs done), and
  extends a finished one: the learning-rate schedule is rebuilt for N;
- a finished run with the same `--epochs` is refused, with the commands
  that train it longer or score it.

A new run's folder is only planned here (`runs.plan_new_run`); it is made
once the data loaded and the model built, so a start that fails leaves
nothing on disk.
"""

import dataclasses

from tfseg import runs
from tfseg.config import RESUMABLE_FIELDS
from tfseg.config import TrainConfig
from tfseg.config import flag
from tfseg.config import flag_value
from tfseg.config import format_size
from tfseg.data.described import describe_data
from tfseg.data.sizing import finds_size
from tfseg.data.sizing import with_automatic_size
from tfseg.train.modeling import takes_default_windows
from tfseg.train.modeling import with_described_defaults
from tfseg.train.modeling import with_recipe_defaults


@dataclasses.dataclass(frozen=True)
class RunStart:
    """Where a run starts: its config, folder, saved state, and whether it
    resumes an earlier run."""

    config: TrainConfig
    run_dir: str
    state: dict  # state.json as it was at the start (not updated later)
    resuming: bool = False
    # The most epochs a time budget may plan (`--epochs` when given).
    epochs_cap: int = None
    explicit: frozenset = frozenset()  # the settings the user gave

    @property
    def epochs_done(self):
        return self.state["epochs_done"]


def given_settings(config, explicit=None):
    """The names of the settings the user gave: `explicit`, or else those
    that differ from `TrainConfig()`."""
    if explicit is not None:
        return frozenset(explicit)
    defaults = dataclasses.asdict(TrainConfig())
    return frozenset(
        name
        for name, value in dataclasses.asdict(config).items()
        if defaults[name] != value
    )


def start_run(config, explicit, stamp):
    """A new run's `RunStart` (its folder `<stamp>_<model>` unless
    `--run-name`, planned, not made) or the resumed run's.

    Raises:
        RunError: for a folder that cannot be used or resumed as asked.
        ValueError: for settings that cannot work.
    """
    explicit = given_settings(config, explicit)
    config = config.absolute()
    if not config.resume:
        config = with_recipe_defaults(config)  # recorded in config.json
        config.validate()
        config = describe_data(config)  # the classes, recorded too
        config = with_described_defaults(config, explicit)
        if "image_size" not in explicit:  # a described folder's shape
            windows = "crop" not in explicit and takes_default_windows(config)
            config = with_automatic_size(config, windows=windows)
        found = finds_size(config) and "image_size" not in explicit
        check_crop(config, found)  # against the size found
        cap = config.epochs if "epochs" in explicit else None
        return RunStart(
            config,
            runs.plan_new_run(config, stamp),
            {"epochs_done": 0},
            epochs_cap=cap,
            explicit=explicit,
        )
    return resume_run(config, explicit)


def check_crop(config, found=False):
    """Raises `ValueError` for a `--crop` window larger than the images at
    `--image-size` (checked once the size is known: a described folder's is
    found from its frames: `found`)."""
    if config.crop is None:
        return
    crop, image = config.crop_shape, config.image_shape
    if crop[0] > image[0] or crop[1] > image[1]:
        where = "their shape in the folder" if found else "--image-size"
        raise ValueError(
            f"--crop {format_size(config.crop)} is a window of the training "
            f"images, which are {format_size(config.image_size)} ({where}): "
            "it does not fit. Pass a smaller --crop or a larger --image-size."
        )


def resume_run(config, explicit):
    """The `RunStart` of `--resume config.resume` (see the rules above)."""
    run_dir = config.resume
    saved, _ = runs.read_config(run_dir)
    given = {name: getattr(config, name) for name in explicit}
    conflicts = saved.conflicts(dataclasses.replace(saved, **given))
    if conflicts:
        listed = "; ".join(
            f"{flag(name)} {flag_value(name, new)} (the run has "
            f"{flag_value(name, old)})"
            for name, (old, new) in sorted(conflicts.items())
        )
        raise runs.RunError(
            f"--resume {run_dir} continues the run as it was configured, but "
            f"these flags differ from it: {listed}. Drop them (only "
            f"{', '.join(flag(n) for n in RESUMABLE_FIELDS if n != 'resume')} "
            "may change), or start a new run with them."
        )
    resumed = dataclasses.replace(
        saved,
        resume=run_dir,
        **{n: given[n] for n in RESUMABLE_FIELDS if n in given and n != "resume"},
    )
    resumed.validate()
    state = runs.read_state(run_dir)
    done = state["epochs_done"]
    if resumed.epochs < done:
        raise runs.RunError(
            f"{run_dir!r} has trained {done} epochs already; --epochs "
            f"{resumed.epochs} would shorten it. Pass more than {done} to extend it."
        )
    if state.get("finished") and resumed.epochs == saved.epochs:
        raise runs.RunError(
            f"{run_dir!r} is finished ({done} of {saved.epochs} epochs, test "
            f"report written). Train it longer with `tfseg train --resume "
            f"{run_dir} --epochs N` (N > {done}), or score it with `tfseg "
            f"evaluate {run_dir}`."
        )
    if resumed.epochs != saved.epochs:
        print(
            f"extending {run_dir} from {saved.epochs} to {resumed.epochs} epochs: "
            "the learning-rate schedule is rebuilt for the new length"
        )
        state = {**state, "finished": False}
    print(f"resuming {run_dir} after epoch {done} of {resumed.epochs}")
    cap = resumed.epochs if "epochs" in explicit else None
    return RunStart(
        resumed, run_dir, state, resuming=True, epochs_cap=cap, explicit=explicit
    )
