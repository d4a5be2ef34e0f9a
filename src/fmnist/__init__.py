"""fmnist: Fashion-MNIST classifiers with correct input normalization.

Importing this package does no work: no Keras import, no seeding, no file reads.
"""

__version__ = "0.1.0"

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
