"""The tutorial's classifier with its normalization inside: raw uint8 28x28 pixels in, 10 probabilities out."""

import keras

from fmnist import normalization

TRAINABLE_PARAMETERS = 266_610  # 784*300+300 + 300*100+100 + 100*10+10, pinned by a test


def build_model(method: str, stats: dict, learning_rate: float = 0.01) -> keras.Model:
    """Input(uint8 28x28) -> normalization layers -> Flatten -> Dense 300 relu -> 100 relu -> 10 softmax."""
    layers = [keras.Input(shape=(28, 28), dtype="uint8", name="pixels")]
    layers += normalization.get(method).build(stats)
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(300, activation="relu"),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ]
    model = keras.Sequential(layers, name=f"fmnist_{method.replace('-', '_')}")
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        metrics=["accuracy"],
    )
    return model
