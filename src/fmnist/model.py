"""The tutorial's classifier with its normalization inside: raw uint8 28x28 pixels in, 10 probabilities out.

Optimizers are chosen by name; the tutorial compiled with the string 'sgd' (plain SGD, learning rate
0.01). The learning rate is an optimizer variable, so members of a sweep can each carry their own.
"""

import keras

from fmnist import normalization
from fmnist.config import check_optimizer

TRAINABLE_PARAMETERS = 266_610  # 784*300+300 + 300*100+100 + 100*10+10, pinned by a test

# config.OPTIMIZERS names and describes them.
OPTIMIZERS = {
    "sgd": lambda rate: keras.optimizers.SGD(learning_rate=rate),
    "momentum": lambda rate: keras.optimizers.SGD(learning_rate=rate, momentum=0.9),
    "nesterov": lambda rate: keras.optimizers.SGD(learning_rate=rate, momentum=0.9, nesterov=True),
    "adam": lambda rate: keras.optimizers.Adam(learning_rate=rate),
}


def build_model(method: str, stats: dict, learning_rate: float = 0.01, optimizer: str = "sgd") -> keras.Model:
    """Input(uint8 28x28) -> normalization layers -> Flatten -> Dense 300 relu -> 100 relu -> 10 softmax."""
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
        keras.layers.Dense(300, activation="relu"),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ]
    model = keras.Sequential(layers, name=name)
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=OPTIMIZERS[check_optimizer(optimizer)](learning_rate),
        metrics=["accuracy"],
    )
    return model
