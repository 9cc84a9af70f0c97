"""Start-up of `tfseg demo`: seconds from the command to its first served
prediction, for the MobileNetV2 U-Net at 128 px.

    python benchmarks/demo_startup.py [--run RUN_DIR] [--repeats 3] [--image FILE]

Without `--run`, a run of `mobilenet_unet` (alpha 1.0) at 128 px is trained
once into a temporary folder, for timing only: `--synthetic 20
--encoder-weights none --epochs 1` (trained weights would not change the
time). Each repeat starts `python -m tfseg demo RUN --port P` in a new
process and, with Gradio's client on 127.0.0.1, times two things from the
start: until the page answers, and until the first segmentation of a photo
(`--image`, or a 500 x 375 JPEG of noise) comes back. The first repeat may
read the libraries from disk; the others find them in the page cache.
Needs the demo extra (`pip install "tfseg[demo]"`).
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_run(folder):
    """A one-epoch 128 px MobileNetV2 U-Net run in `folder`; its path."""
    flags = ["--model", "mobilenet_unet", "--image-size", "128", "--epochs", "1"]
    flags += ["--synthetic", "20", "--batch-size", "4", "--encoder-weights", "none"]
    flags += ["--output-dir", folder, "--run-name", "demo_startup"]
    subprocess.run(
        [sys.executable, "-m", "tfseg", "train", *flags], cwd=ROOT, check=True
    )
    return os.path.join(folder, "demo_startup")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_startup(run_dir, image, log_path):
    """`(seconds to the page, seconds to the first prediction)` of one start."""
    from gradio_client import Client
    from gradio_client import handle_file

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "tfseg", "demo", run_dir, "--port", str(port)]
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    try:
        while True:
            if process.poll() is not None:
                with open(log_path) as log:
                    raise RuntimeError(f"the demo stopped:\n{log.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                time.sleep(0.05)
        page = time.perf_counter() - start
        client = Client(url, verbose=False)
        *_, status = client.predict(handle_file(image), 0.45, api_name="/segment")
        first = time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(timeout=30)
    if not status.startswith("Segmented"):
        raise RuntimeError(f"the demo answered {status!r}")
    return page, first


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="run folder (default: train one for timing)")
    parser.add_argument("--image", help="photo to segment (default: 500 x 375 noise)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        run_dir = args.run or train_run(folder)
        image = args.image or os.path.join(folder, "photo.jpg")
        if not args.image:
            rng = np.random.default_rng(0)
            Image.fromarray(rng.integers(0, 255, (375, 500, 3), np.uint8)).save(image)
        times = [
            time_startup(run_dir, image, os.path.join(folder, "demo.log"))
            for _ in range(args.repeats)
        ]
    for repeat, (page, first) in enumerate(times, 1):
        print(
            f"start {repeat}: page after {page:.2f} s, first prediction {first:.2f} s"
        )
    pages, firsts = zip(*times)
    print("| model | page answers s (median) | first prediction s (median) | max |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| mobilenet_unet 128 px | {statistics.median(pages):.2f} | "
        f"{statistics.median(firsts):.2f} | {max(firsts):.2f} |"
    )


if __name__ == "__main__":
    main()
