"""One handler per command of `tfseg`: each takes the parsed flags, imports
what it needs (Keras, TensorFlow) and calls the library. Returns the exit
code (0, or `PARTIAL_FAILURE` where part of the work failed); an error
raised is one line and `USAGE_ERROR` (`tfseg.cli.main`)."""

import dataclasses

from tfseg.config import EXPORT_DATA_SETTINGS
from tfseg.config import MEDIAN_FREQUENCY
from tfseg.config import NO_CROP
from tfseg.config import TrainConfig

# Exit codes: 1 = the command ran but part of its work failed (e.g. some
# images unreadable); 2 = nothing done, the input cannot work.
PARTIAL_FAILURE = 1
USAGE_ERROR = 2


def train_config(args):
    """`(TrainConfig, names of the settings given)` from parsed train flags."""
    given = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(TrainConfig)
        if hasattr(args, field.name)
    }
    if "model_args" in given:
        given["model_args"] = dict(given["model_args"])
    if "class_weights" in given:
        given["class_weights"] = class_weights_setting(given["class_weights"])
    if given.get("crop") == NO_CROP:  # given: no default windows
        given["crop"] = None
    return TrainConfig.for_recipe(**given), set(given)


def class_weights_setting(values):
    """`--class-weights`' values as the setting: the weights, or
    `median-frequency` given alone."""
    if MEDIAN_FREQUENCY not in values:
        return tuple(values)
    if len(values) > 1:
        raise ValueError(
            f"--class-weights {MEDIAN_FREQUENCY} computes every weight; pass it "
            f"alone, or one number per class; received {' '.join(map(str, values))}."
        )
    return MEDIAN_FREQUENCY


def run_train(args):
    from tfseg.train.recipe import train  # imports Keras

    config, given = train_config(args)
    train(config, explicit=given, started=args.started)


def run_verify_data(args):
    from tfseg.data.verify import verify_data

    problems = verify_data(args.directory, args.dataset, args.write_dataset)
    return PARTIAL_FAILURE if problems else 0


def run_export_data(args):
    from tfseg.data.loading import export_splits  # TensorFlow

    config = TrainConfig(**{name: getattr(args, name) for name in EXPORT_DATA_SETTINGS})
    config.validate()
    export_splits(config, args.split, args.out, resize_mode=args.resize_mode)


def run_evaluate(args):
    from tfseg.evaluate import evaluate_run

    evaluate_run(
        args.path,
        data_dir=args.data_dir,
        data_npz=args.data_npz,
        out=args.out,
        skip_bad=args.skip_bad,
        model_file=args.model,
        image_size=args.image_size,
        tta=args.tta,
        dataset=args.dataset,
        resolution=args.resolution,
    )


def run_predict(args):
    from tfseg.deploy.predict import predict_files

    failed = predict_files(
        args.path,
        args.images,
        args.out,
        tta=args.tta,
        recursive=args.recursive,
        resolution=args.resolution,
    )
    return PARTIAL_FAILURE if failed else 0


def run_export(args):
    from tfseg.deploy.export import export_run

    export_run(
        args.run_dir,
        args.format,
        args.out,
        quantize=args.quantize,
        output=args.output,
        data_dir=args.data_dir,
        data_npz=args.data_npz,
        calibration_images=args.calibration_images,
    )


def run_demo(args):
    from tfseg.demo.page import serve  # Gradio and Keras load when it starts

    serve(args.source, host=args.host, port=args.port)


def run_compare(args):
    from tfseg.compare.running import compare

    rows = compare(args)
    return 0 if any(row["status"] == "ok" for row in rows) else PARTIAL_FAILURE
