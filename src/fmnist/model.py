"""The tutorial's classifier with its normalization inside: raw uint8 28x28 pixels in, 10 probabilities out.

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

import keras

from fmnist import normalization
from fmnist.config import OPTIMIZERS, check_optimizer

PIXELS = 28 * 28
HIDDEN = (300, 100)  # the tutorial's two ReLU layers
CLASSES = 10
WIDTHS = (PIXELS, *HIDDEN, CLASSES)
TRAINABLE_PARAMETERS = sum((width + 1) * after for width, after in zip(WIDTHS, WIDTHS[1:]))  # 266,610


def build_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer ``config.OPTIMIZERS[name]`` describes, at ``learning_rate``."""
    spec = OPTIMIZERS[check_optimizer(name)]
    if spec.adam:
        return keras.optimizers.Adam(learning_rate=learning_rate)
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=spec.momentum, nesterov=spec.nesterov)


def build_model(method: str, stats: dict, learning_rate: float = 0.01, optimizer: str = "sgd") -> keras.Model:
    """Input(uint8 28x28) -> normalization layers -> Flatten -> Dense 300 relu -> 100 relu -> 10 -> softmax."""
    return _compiled(normalization.get(method).build(stats), f"fmnist_{method.replace('-', '_')}",
                     learning_rate, optimizer)


def build_member_model(optimizer: str) -> keras.Model:
    """The same network with a ``MemberNormalization`` layer: the model the members of a sweep share.

    Every normalization method is one setting of that layer's non-trainable variables, so members with
    different methods train in one compiled program; their own models are built with ``build_model``.
    """
    from fmnist.layers import MemberNormalization

    return _compiled([MemberNormalization(name="member_normalization")], "fmnist_members", 0.01, optimizer)


def _compiled(normalization_layers: list, name: str, learning_rate: float, optimizer: str) -> keras.Model:
    layers = [keras.Input(shape=(28, 28), dtype="uint8", name="pixels"), *normalization_layers]
    layers += [
        keras.layers.Flatten(),
        *(keras.layers.Dense(width, activation="relu") for width in HIDDEN),
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
