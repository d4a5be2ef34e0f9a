"""The custom layers: one that saved models carry, one that only sweeps train with."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fmnist")
class PerImageStandardization(keras.layers.Layer):
    """Scale each image to zero mean and unit variance over its own pixels.

    Like ``tf.image.per_image_standardization``: the divisor is at least 1/sqrt(pixel count), so a
    uniform image maps to zeros instead of dividing by zero.
    """

    def call(self, inputs):
        return per_image_standardize(ops.cast(inputs, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return input_shape


def per_image_standardize(x):
    axes = tuple(range(1, len(x.shape)))
    mean = ops.mean(x, axis=axes, keepdims=True)
    std = ops.std(x, axis=axes, keepdims=True)
    count = 1
    for size in x.shape[1:]:
        count *= size
    return (x - mean) / ops.maximum(std, 1.0 / count**0.5)


class MemberNormalization(keras.layers.Layer):
    """Every normalization method as one layer whose settings are non-trainable variables.

    ``((x - subtract) / divide) * multiply + add`` per pixel reproduces the arithmetic of the Rescaling
    and Normalization layers the methods build (normalization.member_settings), and ``per_image`` (0 or
    1) switches to per-image standardization. Being variables, the settings are per-member state when a
    sweep vmaps the model, not separate programs. Never saved: a member's own model is built with its
    method's real layers.
    """

    def build(self, input_shape):
        shape = tuple(input_shape[1:])
        for name, value in (("subtract", "zeros"), ("divide", "ones"), ("multiply", "ones"), ("add", "zeros")):
            setattr(self, name, self.add_weight(name=name, shape=shape, initializer=value, trainable=False))
        self.per_image = self.add_weight(name="per_image", shape=(), initializer="zeros", trainable=False)

    def call(self, inputs):
        # Both are computed and one is selected per member: a variable cannot choose a branch while
        # tracing, and computing the same in every program keeps a member's numbers independent of
        # which other methods share its program.
        x = ops.cast(inputs, self.compute_dtype)
        affine = (x - self.subtract) / self.divide * self.multiply + self.add
        return ops.where(self.per_image > 0, per_image_standardize(x), affine)

    def compute_output_shape(self, input_shape):
        return input_shape
