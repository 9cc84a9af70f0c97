"""A built model's network on another input size, its weights kept.

Every model of `tfseg.models` with same padding is fully convolutional: its
weights do not depend on the input size, so the graph can be cloned on a
new input and the trained weights copied in. `tfseg.inference` runs test
images at their own size this way, and a run trained on `--crop` windows
is saved at its `--image-size` this way (`with_input_size`). Keras only.
"""

import keras


def clone_at(model, size):
    """The network of a functional `model` on a new `(height, width)` input,
    with fresh weights (`NativeResolution` copies the model's).

    The layers are cloned from their own configs (`keras.models.clone_model`)
    under the model's dtype policy: the architecture and dtype policies of
    the saved model, whatever its builder's arguments, and no weights file
    read.
    """
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(model.dtype_policy)
    try:
        shape = (*size, model.input_shape[-1])
        inputs = keras.Input(shape, dtype=model.inputs[0].dtype)
        return keras.models.clone_model(model, input_tensors=inputs)
    finally:
        keras.config.set_dtype_policy(before)


def with_input_size(model, size, rebuild=None):
    """`model` on a `(height, width)` input with its weights: the model
    itself where that is its size already.

    Args:
        model: a functional Keras model.
        size: `(height, width)`.
        rebuild: `(height, width) -> keras.Model`, the same architecture at
            that size. Defaults to `clone_at(model, size)`.

    Raises:
        ValueError: where the weights do not fit the network at that size
            (some weight depends on the input size).
    """
    size = tuple(int(side) for side in size)
    if size == tuple(model.input_shape[1:3]):
        return model
    rebuilt = rebuild(size) if rebuild else clone_at(model, size)
    try:
        rebuilt.set_weights(model.get_weights())
    except ValueError as error:
        raise ValueError(
            f"The weights of {model.name} do not fit its network rebuilt at "
            f"{size[0]}x{size[1]} ({error}): some weight depends on the input "
            "size, so this model cannot run at another size (each image's own "
            "resolution, or --image-size after --crop). Use resolution='model', "
            "or train without --crop."
        ) from error
    return rebuilt
