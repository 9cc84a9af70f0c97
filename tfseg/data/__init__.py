"""Data: Oxford-IIIT Pet and any folder of images and masks (described by a
`dataset.json`, `DatasetDescription`), the tf.data pipeline, augmentation,
export.

This is the one part of tfseg that uses TensorFlow, and it imports it only
when a TensorFlow-backed name is used: `load_npz`, `Examples`,
`ArrayBatches`, `Augmentation.on_arrays`, the folder layout helpers and
`load_splits`/`make_batches` on `.npz` exports work on a machine without
TensorFlow.

A run's data comes from its `TrainConfig` through `tfseg.data.loading`
(`load_splits`, `make_batches`); the pieces below serve other code::

    from tfseg import data

    splits = data.load_oxford_pet("path/to/oxford_iiit_pet", image_size=128)
    train = data.make_dataset(
        splits["train"], batch_size=16, training=True,
        augmentation=data.Augmentation(), seed=0,
    )

    # No TensorFlow: splits exported with `python -m tfseg export-data`
    train = data.ArrayBatches(
        data.load_npz("pets_train.npz"), batch_size=16, training=True,
        augmentation=data.Augmentation(), seed=0,
    )
"""

import importlib

from tfseg.data.arrays import Examples
from tfseg.data.arrays import export_npz
from tfseg.data.arrays import load_npz
from tfseg.data.layout import BREEDS
from tfseg.data.layout import OxfordPetFolder
from tfseg.data.layout import Record
from tfseg.data.synthetic import write_synthetic_pets

# Imported on first use: most need TensorFlow; `ArrayBatches` and
# `tfseg.data.loading` need Keras (TensorFlow only to read images), and
# `Augmentation` TensorFlow only when called on tensors.
_LAZY = {
    "ArrayBatches": "tfseg.data.batches",
    "Augmentation": "tfseg.data.augment",
    "DataError": "tfseg.data.dataset",
    "DatasetDescription": "tfseg.data.dataset",
    "read_dataset_json": "tfseg.data.dataset",
    "find_layout": "tfseg.data.folders",
    "describe_data": "tfseg.data.described",
    "load_folder": "tfseg.data.folder_source",
    "inspect_pair": "tfseg.data.decoding",
    "load_examples": "tfseg.data.pipeline",
    "make_dataset": "tfseg.data.pipeline",
    "load_oxford_pet": "tfseg.data.sources",
    "load_splits": "tfseg.data.loading",
    "make_batches": "tfseg.data.loading",
    "export_splits": "tfseg.data.loading",
    "verify_folder": "tfseg.data.verify",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfseg.data' has no attribute {name!r}")


__all__ = [
    "BREEDS",
    "Examples",
    "OxfordPetFolder",
    "Record",
    "export_npz",
    "load_npz",
    "write_synthetic_pets",
    *_LAZY,
]
