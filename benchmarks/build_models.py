"""Times building every registered model and prints its size and MACs.

    python benchmarks/build_models.py [--image-size 128]

Backend-agnostic (set KERAS_BACKEND). Each model is built twice and the
second build is timed, so one-off import and tracing costs are left out; the
first is reported too.
"""

import argparse
import time

import keras

from tfseg.config import DEFAULT_IMAGE_SIZE
from tfseg.models import count_macs
from tfseg.models import create_model
from tfseg.models import list_models


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    args = parser.parse_args(argv)
    shape = (args.image_size, args.image_size, 3)
    print(f"backend={keras.backend.backend()} keras={keras.__version__} size={shape}")
    print("| model | parameters | GMACs | first build s | build s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in list_models():
        times = []
        for _ in range(2):
            start = time.perf_counter()
            model = create_model(name, input_shape=shape)
            times.append(time.perf_counter() - start)
            keras.backend.clear_session()
        macs = count_macs(model)
        print(
            f"| {name} | {model.count_params():,} | {macs / 1e9:.2f} | "
            f"{times[0]:.2f} | {times[1]:.2f} |"
        )


if __name__ == "__main__":
    main()
