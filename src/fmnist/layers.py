"""The one custom layer: registered for serialization, so it loads with safe mode on."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fmnist")
class PerImageStandardization(keras.layers.Layer):
    """Scale each image to zero mean and unit variance over its own pixels.

    Like ``tf.image.per_image_standardization``: the divisor is at least 1/sqrt(pixel count), so a
    uniform image maps to zeros instead of dividing by zero.
    """

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        axes = tuple(range(1, len(x.shape)))
        mean = ops.mean(x, axis=axes, keepdims=True)
        std = ops.std(x, axis=axes, keepdims=True)
        count = 1
        for size in x.shape[1:]:
            count *= size
        return (x - mean) / ops.maximum(std, 1.0 / count**0.5)

    def compute_output_shape(self, input_shape):
        return input_shape
