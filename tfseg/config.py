"""Every setting of a training run, its defaults and its choices, written once.

Pure Python (no Keras, no TensorFlow): the command line reads these to build
its flags and answer `--help` at once; the data pipeline, the losses, the
comparison and the run folder read the same names.
"""

import dataclasses
import os

from tfseg.sizes import format_size
from tfseg.sizes import image_shape

DEFAULT_IMAGE_SIZE = 128
# The class id of void ("ignore") pixels: the pipeline maps every void mask
# value to it, and losses and metrics given `ignore_class=VOID` leave those
# pixels out. 255 is what most datasets use already (Pascal VOC,
# Cityscapes' trainIds), and leaves class ids 0 to 254.
VOID = 255
# Oxford-IIIT Pet's classes (its trimaps' 1, 2, 3), and with `--binary`.
PET_CLASS_NAMES = ("pet", "background", "border")
BINARY_CLASS_NAMES = ("pet", "background")
# `--class-weights median-frequency`: SegNet's median frequency balancing,
# computed from the training masks (`data.class_weights`).
MEDIAN_FREQUENCY = "median-frequency"
# `--crop none`: train on whole images where a described folder would take
# windows by default (`sizing.with_automatic_size`).
NO_CROP = "none"
# Sides `--image-size` takes. Every example of a split is held in memory
# decoded, 4 bytes a pixel (RGB and the mask): 16 MiB an example at the
# largest (the dataset's photos are about 500 px).
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 2048
BYTES_PER_PIXEL = 4
PET_IMAGES = 7349  # Oxford-IIIT Pet's trainval and test
DEFAULT_BATCH_SIZE = 16
# MobileNetV2's width where `--alpha` is not given (the best per CPU minute
# in docs/BENCHMARKS.md); `keras.applications` itself defaults to 1.0.
DEFAULT_MOBILENET_ALPHA = 0.5
# Builder arguments of the "tfseg" recipe where `--model-arg` gives none
# (BENCHMARKS, "Time to quality": the tutorial's decoder is most of the cost).
RECIPE_MODEL_ARGS = {"mobilenet_unet": {"decoder_filters": [128, 64, 32, 16]}}
# The "tfseg" recipe's defaults for described data (not the pets) where no
# flag is given: few images, few steps (BENCHMARKS, "CamVid": the probes).
DESCRIBED_DATA_DEFAULTS = {"batch_size": 8, "learning_rate": 2e-3}
SPLITS = ("train", "val", "test")
RESIZE_MODES = ("stretch", "crop", "pad")
LOSS_NAMES = ("ce", "dice", "ce+dice", "focal")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "none", "mirrored", "multiworker")
# Test-time augmentations (`--tta`): none, or the mean logits of the image
# and of its horizontal mirror.
TTA_MODES = ("none", "flip")
# Where evaluate segments (`--resolution`): at the model's size, resized back
# ("model"), or at each image's own, padded (`inference.NativeResolution`).
RESOLUTION_MODES = ("model", "image")
# `tfseg demo`'s address: this machine only, Gradio's usual port.
DEMO_HOST = "127.0.0.1"
DEMO_PORT = 7860
# The score that picks best.keras (a Keras log name).
MONITOR = "val_mean_iou"
# The train settings `tfseg compare` takes (its flags are built from these
# fields, as train's are) and passes to every model's `tfseg train`, and
# where its defaults differ from a single run's.
COMPARE_SETTINGS = (
    "data_dir", "data_npz", "synthetic", "image_size", "crop", "epochs",
    "batch_size", "seed", "max_examples", "time_budget", "dataset",
)  # fmt: skip
# (`None`: not passed; each run takes train's own, as described data's differ;
# the epochs are `COMPARE_EPOCHS` unless a time budget sets them.)
COMPARE_DEFAULTS = {"epochs": None, "image_size": None, "batch_size": None}
COMPARE_EPOCHS = 10
# The settings `tfseg export-data` takes: those that decide the splits.
EXPORT_DATA_SETTINGS = (
    "data_dir",
    "dataset",
    "image_size",
    "val_fraction",
    "seed",
    "binary",
    "max_examples",
    "skip_bad",
)
# Settings holding paths: saved absolute, so a run is usable from any folder.
PATH_FIELDS = (
    "data_dir", "dataset", "data_npz", "cache_dir", "output_dir", "resume"
)  # fmt: skip
# Settings no flag sets: what a run finds out (its data's classes).
FOUND_FIELDS = ("description",)
# Settings a resumed run may change: how long it trains, where it is (and,
# across hosts, which host this is and where they meet).
RESUMABLE_FIELDS = (
    "epochs",
    "time_budget",
    "resume",
    "host_index",
    "coordinator",
    "host_timeout",
)


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; saved as `config.json`.

    Attributes mirror the flags of `tfseg train` (`--image-size` sets
    `image_size`), but for `FOUND_FIELDS`. `encoder_weights="auto"` means
    ImageNet weights for pretrained encoders and none for models trained
    from scratch. `image_size` is a side (square) or `(height, width)`, as
    is `crop`: with it, the model trains on random windows of that size of
    the images at `image_size`, and is saved at `image_size` to score.
    `description` is the data's `DatasetDescription.to_dict()`, found when
    the run starts (`None` for Oxford-IIIT Pet, whose classes are
    `PET_CLASS_NAMES`), so a run knows its classes wherever it is read.
    """

    recipe: str = "tfseg"
    model: str = "mobilenet_unet"
    model_args: dict = dataclasses.field(default_factory=dict)
    encoder: str = None
    alpha: float = None
    data_dir: str = None
    dataset: str = None
    data_npz: str = None
    synthetic: int = 0
    image_size: int = DEFAULT_IMAGE_SIZE
    crop: int = None
    epochs: int = 60
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = 1e-3
    encoder_lr_scale: float = 0.1
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    ema: float = 0.0
    loss: str = "ce+dice"
    class_weights: tuple = None
    precision: str = "auto"
    strategy: str = "auto"
    encoder_weights: str = "auto"
    freeze_encoder: bool = False
    augment: bool = True
    val_fraction: float = 0.1
    max_examples: int = None
    binary: bool = False
    skip_bad: bool = False
    cache_dir: str = None
    early_stopping: int = 0
    time_budget: float = None
    seed: int = 0
    output_dir: str = "runs"
    run_name: str = None
    resume: str = None
    hosts: int = 1
    host_index: int = 0
    coordinator: str = None
    host_timeout: float = 300.0
    description: dict = None

    @classmethod
    def for_recipe(cls, recipe="tfseg", **settings):
        """The config of a named recipe (`RECIPES`), with `settings` over it."""
        if recipe not in RECIPES:
            raise ValueError(
                f"--recipe must be one of {tuple(RECIPES)}, not {recipe!r}."
            )
        return cls(**{**RECIPES[recipe], "recipe": recipe, **settings})

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def class_names(self):
        """The class names in id order: the data's, or the pets'."""
        if self.description:
            return tuple(self.description["classes"])
        return BINARY_CLASS_NAMES if self.binary else PET_CLASS_NAMES

    @property
    def classes_known(self):
        """Whether `class_names` is final: the data is described, or it is
        the pets (a folder or exports are described when the run starts)."""
        return bool(self.description) or not (self.data_dir or self.data_npz)

    @property
    def class_colors(self):
        """One `(r, g, b)` per class from the data's description, or `None`
        (`tfseg.visualize` picks the colours)."""
        colors = (self.description or {}).get("colors")
        return tuple(map(tuple, colors)) if colors else None

    @property
    def ignore_class(self):
        """`VOID` for data described by a `DatasetDescription` (void pixels,
        padding), `None` for the pets (every pixel is a class)."""
        return VOID if self.description else None

    @property
    def image_shape(self):
        """`(height, width)` of `image_size`."""
        return image_shape(self.image_size)

    @property
    def crop_shape(self):
        """`(height, width)` of `crop`, or `None` without one."""
        return None if self.crop is None else image_shape(self.crop)

    @property
    def model_shape(self):
        """`(height, width)` the model trains at: `crop`'s, or `image_size`'s."""
        return self.crop_shape or self.image_shape

    def absolute(self):
        """A copy whose paths (data, cache, output, resume, a weights file)
        are absolute, as `config.json` keeps them."""
        changes = {
            name: os.path.abspath(os.path.expanduser(getattr(self, name)))
            for name in PATH_FIELDS
            if getattr(self, name)
        }
        weights = self.encoder_weights
        if weights and weights not in ("auto", "imagenet", "none", "None"):
            changes["encoder_weights"] = os.path.abspath(os.path.expanduser(weights))
        return dataclasses.replace(self, **changes)

    def validate(self):
        """Raises `ValueError` for a setting that cannot work, saying why."""
        checks = [
            (self.precision in PRECISIONS, f"--precision must be one of {PRECISIONS}"),
            (self.strategy in STRATEGIES, f"--strategy must be one of {STRATEGIES}"),
            (self.loss in LOSS_NAMES, f"--loss must be one of {LOSS_NAMES}"),
            (self.epochs >= 1, f"--epochs must be at least 1, not {self.epochs}"),
            (
                self.batch_size >= 1,
                f"--batch-size must be at least 1, not {self.batch_size}",
            ),
            (
                min(self.image_shape) >= MIN_IMAGE_SIZE,
                f"--image-size sides must be at least {MIN_IMAGE_SIZE}, not "
                f"{format_size(self.image_size)}",
            ),
            (
                max(self.image_shape) <= MAX_IMAGE_SIZE,
                f"--image-size sides must be at most {MAX_IMAGE_SIZE}, not "
                f"{format_size(self.image_size)}: {self._memory_at_size()}",
            ),
            (
                self.crop is None or min(self.crop_shape) >= MIN_IMAGE_SIZE,
                f"--crop sides must be at least {MIN_IMAGE_SIZE}, not "
                f"{format_size(self.crop or 0)}",
            ),
            (self.recipe in RECIPES, f"--recipe must be one of {tuple(RECIPES)}"),
            (self.learning_rate > 0, "--learning-rate must be positive"),
            (
                self.encoder_lr_scale > 0,
                "--encoder-lr-scale is the encoder's learning rate as a fraction "
                f"of the decoder's, so positive; received {self.encoder_lr_scale}",
            ),
            (
                self.schedule in SCHEDULES,
                f"--schedule must be one of {SCHEDULES}",
            ),
            (self.warmup_epochs >= 0, "--warmup-epochs must be 0 or more"),
            (
                0 <= self.ema < 1,
                "--ema is the weight average's momentum per step, in [0, 1) (0 "
                f"turns it off; 0.99 averages about 100 steps); received {self.ema}",
            ),
            (
                self.time_budget is None or self.time_budget > 0,
                f"--time-budget is minutes, so positive; received {self.time_budget}",
            ),
            (
                self.early_stopping >= 0,
                "--early-stopping is a patience in epochs (0 turns it off); "
                f"received {self.early_stopping}",
            ),
            (0 <= self.val_fraction < 1, "--val-fraction must be in [0, 1)"),
            (
                self.max_examples is None or self.max_examples >= 1,
                f"--max-examples must be at least 1, not {self.max_examples}",
            ),
            (self.synthetic >= 0, "--synthetic must be a count of pets (N >= 1)"),
            (
                sum(map(bool, (self.data_dir, self.data_npz, self.synthetic))) <= 1,
                "--data-dir, --data-npz and --synthetic are different sources; "
                "pass one of them",
            ),
            (
                not (self.data_npz and self.cache_dir),
                "--cache-dir caches decoded images; --data-npz data is decoded "
                "already, so drop --cache-dir",
            ),
            (
                not self.dataset or self.data_dir,
                f"--dataset {self.dataset} describes a --data-dir folder; pass "
                "--data-dir DIR too",
            ),
            (
                self.class_weights in (None, MEDIAN_FREQUENCY)
                or all(weight > 0 for weight in self.class_weights),
                "--class-weights must be positive numbers (a class weighted 0 or "
                f"less is not learned, or unlearned); received "
                f"{list(self.class_weights or [])}",
            ),
            (
                self.class_weights is None or self.loss != "dice",
                "--class-weights weight pixels of the ce, ce+dice and focal losses; "
                "Dice is class-balanced already",
            ),
            (self.hosts >= 1, f"--hosts must be at least 1, not {self.hosts}"),
            (
                0 <= self.host_index < self.hosts,
                f"--host-index must be 0 to {self.hosts - 1} (one per host of "
                f"--hosts {self.hosts}), not {self.host_index}",
            ),
            (
                self.hosts == 1 or _is_address(self.coordinator),
                f"--hosts {self.hosts} needs --coordinator HOST:PORT (host 0's "
                f"address and a free port there); received {self.coordinator!r}",
            ),
            (
                self.hosts == 1 or self.strategy != "none",
                "--strategy none trains on one device; --hosts spreads batches "
                "over every host's devices, so drop --strategy none",
            ),
            (self.host_timeout > 0, "--host-timeout must be a positive number"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message}.")
        if self.classes_known:
            self.check_class_weights()

    def check_class_weights(self):
        """Raises `ValueError` unless `class_weights` has one per class."""
        weights = self.class_weights
        if weights in (None, MEDIAN_FREQUENCY) or len(weights) == self.num_classes:
            return
        raise ValueError(
            f"--class-weights needs {self.num_classes} values, one per class "
            f"({', '.join(self.class_names)}); received {list(weights)}. Or "
            f"pass --class-weights {MEDIAN_FREQUENCY}."
        )

    def _memory_at_size(self):
        """The memory the decoded examples take at `image_size`, in words."""
        height, width = self.image_shape
        each = height * width * BYTES_PER_PIXEL
        count = self.synthetic or (3 * self.max_examples if self.max_examples else 0)
        count = count or PET_IMAGES
        return (
            f"every example is held in memory decoded, {_in_bytes(each)} each at "
            f"{format_size(self.image_size)} px (image and mask), "
            f"{_in_bytes(each * count)} for {count:,} examples"
        )

    def conflicts(self, other):
        """`{field: (self's, other's)}` of the settings that differ, but for
        those a resumed run may change (`RESUMABLE_FIELDS`)."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return {
            name: (mine[name], theirs[name])
            for name in mine
            if name not in RESUMABLE_FIELDS
            and _plain(mine[name]) != _plain(theirs[name])
        }

    @classmethod
    def from_dict(cls, values):
        """A config from `config.json`'s `"config"` (fields it lacks take
        their defaults; unknown ones are an error)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(
                f"config.json holds settings this tfseg does not know: {unknown}. "
                "It was written by another version of tfseg."
            )
        values = dict(values)
        weights = values.get("class_weights")
        if weights is not None and weights != MEDIAN_FREQUENCY:
            values["class_weights"] = tuple(weights)
        for name in ("image_size", "crop"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return cls(**values)


# Named recipes: the settings each changes from the defaults above, which
# are tfseg's own recipe ("tfseg", measured in docs/BENCHMARKS.md). Flags
# given with `--recipe` override the recipe's.
RECIPES = {
    "tfseg": {},
    # The TensorFlow segmentation tutorial's recipe on tfseg's pipeline: its
    # MobileNetV2 (alpha 1.0) U-Net with the encoder frozen, plain cross-
    # entropy, Adam at a constant 1e-3 (no warm-up, no weight decay), 20
    # epochs of batches of 64. (The tutorial augments by flips only.)
    "tutorial": {
        "alpha": 1.0,
        "freeze_encoder": True,
        "loss": "ce",
        "epochs": 20,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "encoder_lr_scale": 1.0,
        "schedule": "constant",
        "warmup_epochs": 0.0,
        "weight_decay": 0.0,
        "ema": 0.0,
    },
}


def _in_bytes(count):
    """`16.0 MiB`, `37.3 GiB`: a byte count in binary units."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    power = 0
    while count >= 1024 and power < len(units) - 1:
        count, power = count / 1024, power + 1
    return f"{count:.1f} {units[power]}"


def _is_address(address):
    """Whether `address` reads as `HOST:PORT`."""
    host, _, port = (address or "").rpartition(":")
    return bool(host) and port.isdigit()


def _plain(value):
    """Tuples and lists compare equal (JSON has only lists)."""
    return list(value) if isinstance(value, tuple) else value


SIZE_FIELDS = ("image_size", "crop")


def flag_value(name, value):
    """A setting as its flag takes it, for messages: `(160, 320)` ->
    `160x320`; a size not set -> `none` (no windows)."""
    if name in SIZE_FIELDS:
        return NO_CROP if value in (None, NO_CROP) else format_size(value)
    return repr(value)


def flag(name):
    """The command-line flag of a config field: `image_size` -> `--image-size`."""
    return "--" + name.replace("_", "-")
