"""Input pipeline speed and memory on the real Oxford-IIIT Pet sample.

    python benchmarks/data_pipeline.py [--data-dir ../shared/data/oxford_iiit_pet]
        [--image-size 128] [--repeats 3]

Measured in one run, so the ratios hold on a noisy machine:
1. First epoch from raw files (decode, check, resize): tfseg's
   `load_examples` against a plain per-image PIL loop and against a plain
   parallel tf.data map (full decode + antialiased resize).
2. Cached epochs with augmentation, batch 32: tfseg's `make_dataset` against
   a plain per-example augmentation map (flip, zoom crop, brightness), and
   the TensorFlow-free `ArrayBatches` (augmenting in NumPy on worker
   threads, or compiled with JAX when JAX is installed).
3. Peak resident memory while loading, and while serving cached augmented
   epochs (after the first, which compiles), against the decoded arrays.
"""

import argparse
import concurrent.futures
import importlib.util
import os
import threading
import time

import numpy as np
import psutil
import tensorflow as tf
from PIL import Image

from tfseg import data
from tfseg.config import DEFAULT_IMAGE_SIZE


def best_rate(function, count, repeats):
    """Best items/s over `repeats` runs of `function` (count items each)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return count / min(times)


def pil_loop(records, size):
    for record in records:
        image = (
            Image.open(record.image_path)
            .convert("RGB")
            .resize((size, size), Image.BILINEAR)
        )
        mask = Image.open(record.trimap_path).resize((size, size), Image.NEAREST)
        np.asarray(image), np.asarray(mask)


def plain_tf_map(records, size):
    def load(image_path, trimap_path):
        image = tf.io.decode_image(
            tf.io.read_file(image_path), 3, expand_animations=False
        )
        mask = tf.io.decode_png(tf.io.read_file(trimap_path), 1)
        image = tf.image.resize(image, [size, size], antialias=True)
        return tf.cast(image, tf.uint8), tf.image.resize(mask, [size, size], "nearest")

    paths = ([r.image_path for r in records], [r.trimap_path for r in records])
    dataset = tf.data.Dataset.from_tensor_slices(paths).map(load, tf.data.AUTOTUNE)
    for _ in dataset.prefetch(tf.data.AUTOTUNE):
        pass


def plain_augmented_epoch(examples, batch_size, seed=0):
    size = examples.images.shape[1]

    def augment(image, mask, seeds):
        both = tf.concat([tf.cast(image, tf.float32), tf.cast(mask, tf.float32)], -1)
        both = tf.image.stateless_random_flip_left_right(both, seeds[0])
        crop = tf.cast(
            size / tf.random.stateless_uniform([], seeds[1], 1.0, 1.4), tf.int32
        )
        both = tf.image.stateless_random_crop(both, [crop, crop, 4], seeds[2])
        image = tf.image.resize(both[..., :3], [size, size])
        mask = tf.image.resize(both[..., 3:], [size, size], "nearest")
        image = tf.image.stateless_random_brightness(image, 25.0, seeds[3])
        return tf.clip_by_value(image, 0, 255), tf.cast(mask, tf.uint8)

    seeds = tf.data.Dataset.random(seed=seed).batch(2).batch(4)
    dataset = tf.data.Dataset.from_tensor_slices((examples.images, examples.masks))
    dataset = tf.data.Dataset.zip(dataset.shuffle(len(examples), seed=seed), seeds)
    dataset = dataset.map(lambda pair, s: augment(*pair, s), tf.data.AUTOTUNE)
    for _ in dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE):
        pass


def array_batches_epoch(batches):
    """One epoch of `ArrayBatches`, read as Keras reads it (worker threads)."""
    batches.on_epoch_begin()
    with concurrent.futures.ThreadPoolExecutor(batches.workers) as pool:
        served = list(pool.map(batches.__getitem__, range(batches.num_batches)))
    for images, _ in served:
        np.asarray(images)  # waits for JAX's asynchronous work


class PeakMemory:
    """Samples this process's resident memory in a background thread."""

    def __init__(self):
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self):
        self.start = self.process.memory_info().rss
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.path.join(
        os.path.dirname(__file__), "../../shared/data/oxford_iiit_pet"
    )
    parser.add_argument("--data-dir", default=os.path.normpath(default_dir))
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    size, repeats = args.image_size, args.repeats
    folder = data.OxfordPetFolder(args.data_dir)
    records = [
        data.Record(n, folder.image_path(n), folder.trimap_path(n))
        for n in folder.paired_names()
    ]
    count = len(records)
    print(
        f"{count} real pairs at {size} px, tf {tf.__version__}, {os.cpu_count()} CPUs"
    )

    # Warm up TensorFlow's tracing and file cache for every contender.
    data.load_examples(records[:8], size)
    plain_tf_map(records[:8], size)
    pil_loop(records, size)

    with PeakMemory() as loading:
        examples = data.load_examples(records, size)
    array_bytes = examples.images.nbytes + examples.masks.nbytes
    dataset = data.make_dataset(
        examples, args.batch_size, training=True, augmentation=data.Augmentation()
    )
    for _ in dataset:  # first epoch: tracing and XLA compilation
        pass
    with PeakMemory() as serving:
        for _ in range(3):
            for _ in dataset:
                pass

    rates = {
        "PIL loop": best_rate(lambda: pil_loop(records, size), count, repeats),
        "plain tf.data map": best_rate(
            lambda: plain_tf_map(records, size), count, repeats
        ),
        "tfseg load_examples": best_rate(
            lambda: data.load_examples(records, size), count, repeats
        ),
    }
    served = len(examples) // args.batch_size * args.batch_size
    augmented = {
        "plain per-example augmentation": best_rate(
            lambda: plain_augmented_epoch(examples, args.batch_size),
            len(examples),
            repeats,
        ),
        "tfseg make_dataset + Augmentation": best_rate(
            lambda: [None for _ in dataset], served, repeats
        ),
    }
    ways = {"NumPy": False, "JAX": True}
    if importlib.util.find_spec("jax") is None:
        del ways["JAX"]
    for way, on_device in ways.items():
        batches = data.ArrayBatches(
            examples,
            args.batch_size,
            training=True,
            augmentation=data.Augmentation(),
            on_device=on_device,
        )
        array_batches_epoch(batches)  # JAX compiles here
        name = f"tfseg ArrayBatches, {way}, {batches.workers} thread(s)"
        augmented[name] = best_rate(
            lambda b=batches: array_batches_epoch(b), served, repeats
        )
    print("\n| first epoch from raw files | images/s | vs PIL loop |")
    print("| --- | ---: | ---: |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / rates['PIL loop']:.2f}x |")
    print("\n| cached epoch, augmentation on | images/s | vs plain |")
    print("| --- | ---: | ---: |")
    plain = augmented["plain per-example augmentation"]
    for name, rate in augmented.items():
        print(f"| {name} | {rate:,.0f} | {rate / plain:.2f}x |")
    print(f"\ndecoded arrays: {array_bytes / 2**20:.1f} MiB")
    for label, memory in (("loading", loading), ("3 cached augmented epochs", serving)):
        print(
            f"peak memory {label}: +{(memory.peak - memory.start) / 2**20:.0f} MiB "
            f"over {memory.start / 2**20:.0f} MiB"
        )


if __name__ == "__main__":
    main()
