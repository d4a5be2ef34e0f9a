"""The classifiers, with their normalization inside: raw uint8 28x28 pixels in, 10 probabilities out.

A model is chosen by name (``config.MODELS``: the tutorial's MLP, the MLP with BatchNormalization or
LayerNormalization before each hidden ReLU, a small CNN); every one is Input -> normalization layers ->
its own layers -> Dense "logits" -> Softmax "probabilities", so the engines, ``logits_view``, export and
serving treat them alike. Trainable parameters: mlp 266,610; mlp-bn and mlp-ln 267,410 (a scale and an
offset per hidden unit; mlp-bn also keeps 800 moving statistics); cnn 315,146 (``trainable_parameters``).

Optimizers are chosen by name; the tutorial compiled with the string 'sgd' (plain SGD, learning rate
0.01). The learning rate is an optimizer variable, so members of a sweep can each carry their own.

The loss is computed from logits. The model ends in a separate ``Softmax`` layer, and every engine trains
``logits_view(model)``: the same layers and variables up to the pre-softmax output, with a log-softmax
cross-entropy. Keras 3 on JAX computes the cross-entropy of a softmax *output* from probabilities clipped
to [1e-7, 1 - 1e-7], so a sample whose true-class probability is clipped gets no gradient at all; with
raw 0..255 pixels most samples start that way (raw pixels, Adam 1e-5, 2 epochs, seed 0: val_accuracy
0.368 on JAX against 0.759 on TensorFlow, which recovers the logits from the softmax op). Saved models
keep the softmax, so predict, serve, ONNX and ``keras.models.load_model`` see probabilities.
"""

import functools
import math

import keras

from fmnist import normalization
from fmnist.config import MODELS, OPTIMIZERS, check_model, check_optimizer

PIXELS = 28 * 28
CLASSES = 10
# The tutorial's mlp: 784 -> 300 -> 100 -> 10, (784 + 1) * 300 + (300 + 1) * 100 + (100 + 1) * 10 weights
TRAINABLE_PARAMETERS = 266_610


def build_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer ``config.OPTIMIZERS[name]`` describes, at ``learning_rate``."""
    spec = OPTIMIZERS[check_optimizer(name)]
    if spec.adam:
        return keras.optimizers.Adam(learning_rate=learning_rate)
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=spec.momentum, nesterov=spec.nesterov)


def build_model(method: str, stats: dict, learning_rate: float = 0.01, optimizer: str = "sgd",
                model: str = "mlp") -> keras.Model:
    """Input(uint8 28x28) -> normalization layers -> the layers of ``model`` -> Dense 10 -> softmax; the
    tutorial's mlp: Flatten -> Dense 300 relu -> 100 relu. The Keras name is ``fmnist_<method>`` whatever
    the network (export reads the normalization from it into the ONNX metadata)."""
    return _compiled(normalization.get(method).build(stats), f"fmnist_{method.replace('-', '_')}",
                     learning_rate, optimizer, model)


def build_member_model(optimizer: str, model: str = "mlp") -> keras.Model:
    """The network ``model`` with a ``MemberNormalization`` layer: the model the members of a program share.

    Every normalization method is one setting of that layer's non-trainable variables, so members with
    different methods train in one compiled program; their own models are built with ``build_model``.
    """
    from fmnist.layers import MemberNormalization

    return _compiled([MemberNormalization(name="member_normalization")], "fmnist_members", 0.01, optimizer, model)


@functools.cache
def trainable_parameters(model: str) -> int:
    """The trainable parameters of the model named ``model``, counted by Keras on a built one (building
    it draws initial weights from Keras's global random state: not between a seed and ``build_model``)."""
    return _sizes(model)[0]


@functools.cache
def activations_per_image(model: str) -> int:
    """The values ``model`` holds for one image: the pixels and every computing layer's output (reshaping
    and the softmax aside; the mlp: 784 + 300 + 100 + 10). What the study's memory model counts per image."""
    return _sizes(model)[1]


@functools.cache
def _sizes(model: str) -> tuple[int, int]:
    built = _compiled([keras.layers.Rescaling(1.0)], f"count_{model}".replace("-", "_"), 0.01, "sgd", model)
    parameters = sum(int(variable.numpy().size) for variable in built.trainable_variables)
    reshaping = (keras.layers.Rescaling, keras.layers.Flatten, keras.layers.Reshape, keras.layers.Softmax)
    values = PIXELS + sum(math.prod(layer.output.shape[1:]) for layer in built.layers if not isinstance(layer, reshaping))
    return parameters, values


def network_statistics(model: keras.Model) -> list:
    """The non-trainable variables of ``model``'s network proper (batch normalization's moving mean and
    variance), in order: they come after the normalization layers' own, which sit before the network."""
    return [variable for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
            for variable in layer.non_trainable_variables]


def network_layers(model: str) -> list:
    """The layers of ``config.MODELS[model]`` between the normalization and the logits."""
    network = MODELS[check_model(model)]
    layers = []
    if network.convolutions:
        layers.append(keras.layers.Reshape((28, 28, 1)))  # one channel: the grey level
        for filters in network.convolutions:
            layers.append(keras.layers.Conv2D(filters, 3, strides=2, activation="relu"))
    layers.append(keras.layers.Flatten())
    for width in network.hidden:
        if network.between is None:
            layers.append(keras.layers.Dense(width, activation="relu"))
            continue
        between = keras.layers.BatchNormalization() if network.between == "batch" else keras.layers.LayerNormalization()
        layers += [keras.layers.Dense(width), between, keras.layers.ReLU()]
    return layers


def _compiled(normalization_layers: list, name: str, learning_rate: float, optimizer: str,
              model: str = "mlp") -> keras.Model:
    layers = [keras.Input(shape=(28, 28), dtype="uint8", name="pixels"), *normalization_layers]
    layers += [
        *network_layers(model),
        keras.layers.Dense(CLASSES, name="logits"),
        keras.layers.Softmax(name="probabilities"),
    ]
    model = keras.Sequential(layers, name=name)
    model.compile(
        loss="sparse_categorical_crossentropy",  # what a user's own fit of the loaded model gets; fmnist trains
        optimizer=build_optimizer(optimizer, learning_rate),  # logits_view(model) instead
        metrics=["accuracy"],
    )
    return model


def loss_from_logits():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def logits_view(model: keras.Model) -> keras.Model:
    """``model`` up to its pre-softmax output: the same layer objects and variables (in the same order),
    compiled with ``model``'s optimizer and the cross-entropy from logits. Training the view trains ``model``."""
    if not isinstance(model.layers[-1], keras.layers.Softmax):
        raise ValueError(f"model {model.name!r} does not end in a Softmax layer; build it with build_model")
    view = keras.Model(model.inputs, model.layers[-2].output, name=f"{model.name}_logits")
    if [id(v) for v in view.trainable_variables] != [id(v) for v in model.trainable_variables] or \
            [id(v) for v in view.non_trainable_variables] != [id(v) for v in model.non_trainable_variables]:
        raise ValueError(f"model {model.name!r}: the logits view does not share the model's variables in order")
    view.compile(optimizer=model.optimizer, loss=loss_from_logits(), metrics=["accuracy"])
    return view
