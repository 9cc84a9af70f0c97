"""A short real CamVid run: 11 named classes, void (11) ignored everywhere.

One epoch of the default model on 8 CamVid images at 64x96, trained once
for the module through `tfseg.train.recipe.train`; skips where the shared
CamVid folder is absent. The loss and metric checks build their own
inputs: changing only void pixels' predictions changes nothing, changing
one other pixel changes the value.
"""

import importlib.util
import json
import os

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT
from tests.conftest import SHARED_DATA
from tfseg import files
from tfseg import losses
from tfseg import runs
from tfseg.config import LOSS_NAMES
from tfseg.config import VOID
from tfseg.config import TrainConfig
from tfseg.data.dataset import read_dataset_json
from tfseg.data.folders import find_layout
from tfseg.data.folders import read_mask
from tfseg.data.loading import load_splits
from tfseg.metrics import ConfusionMatrix
from tfseg.metrics import safe_metric_name
from tfseg.metrics import training_metrics

CAMVID = SHARED_DATA / "camvid"
CAMVID_JSON = PROJECT_ROOT / "examples" / "camvid.json"
CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)  # fmt: skip
CAMVID_VOID = 11  # in the mask files
IMAGES = 8
SIZE = (64, 96)
# The default encoder's (alpha 0.5) ImageNet file, where Keras looks first.
WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5"


def encoder_weights():
    """`"auto"` (ImageNet) where the weights file is found offline, else
    the shared copy's path, else `"none"`."""
    keras_home = os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras"))
    if os.path.isfile(os.path.join(keras_home, "models", WEIGHTS_FILE)):
        return "auto"
    shared = SHARED_DATA / "keras_weights" / WEIGHTS_FILE
    return str(shared) if shared.is_file() else "none"


@pytest.fixture(scope="module")
def camvid_run(tmp_path_factory):
    """The run folder of one epoch on 8 CamVid images (about a minute)."""
    if not CAMVID.is_dir():
        pytest.skip(f"CamVid not found at {CAMVID}")
    from tfseg.train.recipe import train

    config = TrainConfig(
        data_dir=str(CAMVID),
        dataset=str(CAMVID_JSON),
        image_size=SIZE,
        max_examples=IMAGES,
        epochs=1,
        batch_size=4,
        augment=False,  # one XLA compilation less
        encoder_weights=encoder_weights(),
        output_dir=str(tmp_path_factory.mktemp("camvid")),
        run_name="camvid",
    )
    return train(config)


def test_the_model_predicts_the_11_camvid_classes(camvid_run):
    config, model = runs.open_run(camvid_run)
    assert config.class_names == CLASSES and config.ignore_class == VOID
    assert model.output_shape == (None, *SIZE, 11)
    # The compiled loss of the run skips void pixels.
    trained = files.load_model(os.path.join(camvid_run, runs.LAST))
    assert trained.loss.ignore_class == VOID


def test_config_json_records_the_description(camvid_run):
    saved = files.read_json(os.path.join(camvid_run, runs.CONFIG))["config"]
    described = read_dataset_json(CAMVID_JSON).to_dict()
    assert saved["description"] == described
    assert saved["description"]["classes"] == list(CLASSES)
    assert saved["description"]["ignore"] == [CAMVID_VOID]
    assert saved["image_size"] == list(SIZE)


def test_history_has_a_column_per_class_by_name(camvid_run):
    (row,) = runs.history_rows(camvid_run)
    per_class = [f"iou_{safe_metric_name(name)}" for name in CLASSES]
    assert "iou_pole" in per_class and "iou_signsymbol" in per_class
    for column in per_class:
        assert 0 <= float(row[column]) <= 1 and 0 <= float(row[f"val_{column}"]) <= 1
    assert {"loss", "val_loss", "mean_iou", "val_mean_iou"} <= set(row)


def scored_masks():
    """The test split's masks as the files hold them: no test split, so the
    first `IMAGES` of val, by name."""
    pairs = find_layout(CAMVID).splits["val"][:IMAGES]
    return [read_mask(pair.mask_path)[0] for pair in pairs]


def test_the_report_ignores_every_void_pixel(camvid_run):
    report = files.read_json(os.path.join(camvid_run, "metrics.json"))
    assert report["class_names"] == list(CLASSES) and report["images"] == IMAGES
    masks = scored_masks()
    assert all(mask.shape == (360, 480) for mask in masks)
    void = sum(int((mask == CAMVID_VOID).sum()) for mask in masks)
    original = report["original_resolution"]
    assert void > 0 and original["ignored_pixels"] == void
    assert original["scored_pixels"] + void == IMAGES * 360 * 480
    assert len(original["iou"]) == 11
    # At the training resolution, the void pixels of the resized masks.
    config, _ = runs.open_run(camvid_run)
    test = load_splits(config, ["test"], progress=False)["test"]
    training = report["training_resolution"]
    assert training["ignored_pixels"] == int((test.masks == VOID).sum()) > 0
    assert training["scored_pixels"] + training["ignored_pixels"] == test.masks.size


def camvid_labels(height=24, width=32):
    """Two real CamVid masks, subsampled, void as `VOID`: `(2, h, w, 1)`."""
    pairs = find_layout(CAMVID).splits["train"][:2]
    masks = []
    for pair in pairs:
        mask = read_mask(pair.mask_path)[0]
        mask = mask[:: mask.shape[0] // height, :: mask.shape[1] // width]
        masks.append(np.where(mask == CAMVID_VOID, VOID, mask)[:height, :width])
    return np.stack(masks)[..., None].astype(np.int32)


@pytest.fixture(scope="module")
def labels():
    if not CAMVID.is_dir():
        pytest.skip(f"CamVid not found at {CAMVID}")
    found = camvid_labels()
    assert (found == VOID).any() and (found != VOID).any()
    return found


def changed_predictions(labels, where):
    """Random logits, and the same with the pixels `where` changed."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(*labels.shape[:3], 11)).astype(np.float32)
    other = logits.copy()
    other[where] = rng.normal(size=(int(where.sum()), 11)) * 5
    return logits, other


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_void_pixels_count_in_no_loss(labels, name):
    loss = losses.get_loss(name, ignore_class=VOID)
    void = labels[..., 0] == VOID
    logits, void_changed = changed_predictions(labels, void)
    one_pixel = np.zeros_like(void)
    one_pixel[np.unravel_index(np.flatnonzero(~void)[0], void.shape)] = True
    _, pixel_changed = changed_predictions(labels, one_pixel)
    value = float(loss(labels, logits))
    assert np.isfinite(value)
    assert float(loss(labels, void_changed)) == pytest.approx(value, rel=1e-6)
    assert float(loss(labels, pixel_changed)) != pytest.approx(value, rel=1e-6)
    # The loss of the other pixels alone: void pixels are not in the means.
    scored = int((~void).sum())
    alone = loss(
        labels[~void].reshape(1, scored, 1, 1), logits[~void].reshape(1, scored, 1, 11)
    )
    assert float(alone) == pytest.approx(value, rel=1e-5)


def test_void_pixels_count_in_no_score(labels):
    void = labels[..., 0] == VOID
    logits, void_changed = changed_predictions(labels, void)
    # One scored pixel's prediction made right (or wrong, if it was right).
    pixel = np.unravel_index(np.flatnonzero(~void)[0], void.shape)
    truth = labels[pixel][0]
    wanted = truth if logits[pixel].argmax() != truth else (truth + 1) % 11
    pixel_changed = logits.copy()
    pixel_changed[pixel] = 10.0 * (np.arange(11) == wanted)

    def report(predictions):
        matrix = ConfusionMatrix(11)
        matrix.update(labels[..., 0], predictions.argmax(-1))
        return matrix.scores()

    def keras_scores(predictions):
        scores = {}
        for metric in training_metrics(CLASSES, ignore_class=VOID):
            metric.update_state(labels, predictions)
            scores[metric.name] = float(metric.result())
        return scores

    for score in (report, keras_scores):
        assert score(void_changed) == score(logits)
        assert score(pixel_changed) != score(logits)
    assert report(logits)["ignored_pixels"] == int(void.sum())
    assert report(logits)["scored_pixels"] == int((~void).sum())


def test_the_benchmark_row_of_a_finished_run(camvid_run, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "camvid_benchmark", PROJECT_ROOT / "benchmarks" / "camvid.py"
    )
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    out = tmp_path / "row.json"
    row = benchmark.main(["--from-run", camvid_run, "--out", str(out)])
    assert files.read_json(str(out)) == json.loads(json.dumps(row))
    report = files.read_json(os.path.join(camvid_run, "metrics.json"))
    original = report["original_resolution"]
    assert row["mean_iou"] == original["mean_iou"] and row["epochs"] == 1
    thin = [original["iou"][CLASSES.index(name)] for name in benchmark.THIN]
    assert row["thin_mean_iou"] == pytest.approx(np.nanmean(thin))
    assert row["pixels_per_image"] == 360 * 480 and row["scored_split"] == "val"
    printed = capsys.readouterr().out
    assert "| - | - | 0 | 1 | " + f"{original['mean_iou']:.3f} |" in printed
    assert "47.7 / 62.0 / 82.7" in printed and "60.1 / 71.2 / 90.4" in printed
