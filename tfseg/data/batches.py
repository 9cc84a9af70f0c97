"""Batches of in-memory examples for `model.fit`, without TensorFlow.

`ArrayBatches` is the `.npz` path's counterpart of `make_dataset`: the same
batches (float32 images in 0..255, uint8 masks, optional per-pixel class
weights), shuffled each epoch from a seed and augmented by the same
`Augmentation`, as a `keras.utils.PyDataset`, so it feeds any backend. On
the JAX backend the augmentation runs compiled on JAX's default device (the
GPU where there is one); elsewhere in NumPy on worker threads.
"""

import math
import os

import keras
import numpy as np

from tfseg.config import DEFAULT_BATCH_SIZE
from tfseg.data.augment import NUMPY_OPS
from tfseg.data.augment import jax_ops
from tfseg.data.class_weights import class_weight_table
from tfseg.data.class_weights import pixel_weights


class ArrayBatches(keras.utils.PyDataset):
    """Serves `Examples` as batches of `(images, masks[, weights])`.

    Args:
        examples: `Examples`, e.g. from `load_npz`.
        batch_size: examples per batch. Defaults to
            `tfseg.config.DEFAULT_BATCH_SIZE` (16).
        training: shuffle (a new order each epoch, from `seed`) and augment.
            Defaults to `False`.
        augmentation: an `Augmentation`, or `None`. Applied only when
            `training`. Defaults to `None`.
        seed: seed of the shuffle and the augmentation draws. Defaults to
            `0`.
        drop_remainder: drop a last smaller batch. Defaults to `training`.
        class_weights: one weight per class; batches then carry per-pixel
            `sample_weight`s (see `class_weights.class_weight_table`).
            Defaults to `None`.
        initial_epoch: the epoch the first `fit` epoch is; a resumed run
            passes the epochs already done, so it sees the same orders and
            draws as a run that never stopped. Defaults to `0`.
        num_shards: hosts sharing each global batch (`--hosts`): the
            epoch's order is over the whole split and global batch `index`
            is its next `num_shards * batch_size` examples, of which this
            host serves slice `shard_index`. Defaults to `1`.
        shard_index: this host's slice, `0` to `num_shards - 1`. Defaults
            to `0`.
        on_device: augment with JAX on its default device. Defaults to
            whether the Keras backend is JAX.
        workers: threads preparing batches. Defaults to 1 on the device
            (JAX queues the work asynchronously), else the CPU count, up to 8.
    """

    def __init__(
        self,
        examples,
        batch_size=DEFAULT_BATCH_SIZE,
        *,
        training=False,
        augmentation=None,
        seed=0,
        drop_remainder=None,
        class_weights=None,
        initial_epoch=0,
        num_shards=1,
        shard_index=0,
        on_device=None,
        workers=None,
    ):
        if on_device is None:
            on_device = keras.backend.backend() == "jax"
        if workers is None:
            workers = 1 if on_device else min(os.cpu_count() or 1, 8)
        super().__init__(workers=workers, max_queue_size=4)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be a positive integer; received {batch_size!r}."
            )
        self.examples = examples
        self.batch_size = batch_size
        self.training = training
        self.augmentation = augmentation if training else None
        self.seed = seed
        self.drop_remainder = training if drop_remainder is None else drop_remainder
        self.class_weights = class_weight_table(class_weights, examples.masks)
        self.on_device = on_device
        self.num_shards = num_shards
        self.shard_index = shard_index
        # Keras may read a batch before the first `on_epoch_begin` (to learn
        # the shapes): the first epoch's order is ready from the start.
        self.epoch = initial_epoch
        self._begun = False
        self._served = set()  # batch indices read since the epoch began
        self._shuffle()
        if self.num_batches == 0:
            raise ValueError(
                f"A split of {len(examples)} examples makes no whole batch of "
                f"{batch_size * num_shards}. Lower --batch-size to "
                f"{len(examples) // num_shards} or less."
            )

    @property
    def num_batches(self):
        count = len(self.examples) / (self.batch_size * self.num_shards)
        return math.floor(count) if self.drop_remainder else math.ceil(count)

    def on_epoch_begin(self):
        # Keras also begins an "epoch" to read one batch when it builds a
        # model (JAX backend): only a pass that read every batch counts.
        if self._begun and len(self._served) == self.num_batches:
            self.epoch += 1
            self._shuffle()
        self._begun = True
        self._served = set()

    def _shuffle(self):
        self.order = np.arange(len(self.examples))
        if self.training:
            rng = np.random.default_rng([self.seed, self.epoch])
            self.order = rng.permutation(len(self.examples))

    def __getitem__(self, index):
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} of {self.num_batches}")
        self._served.add(index)
        # This host's slice of the global batch (the batch, on one host).
        part = index * self.num_shards + self.shard_index
        picks = np.sort(self.order[part * self.batch_size :][: self.batch_size])
        images = self.examples.images[picks]
        masks = self.examples.masks[picks]
        if self.augmentation is not None:
            images, masks = self.augmentation.on_arrays(
                images,
                masks,
                seed=[self.seed, self.epoch, part],
                on_device=self.on_device,
            )
        else:
            images = images.astype(np.float32)
        if self.class_weights is None:
            return images, masks
        # On the device the masks are JAX arrays: the lookup stays there.
        ops = NUMPY_OPS if isinstance(masks, np.ndarray) else jax_ops()
        return images, masks, pixel_weights(ops, self.class_weights, masks)
