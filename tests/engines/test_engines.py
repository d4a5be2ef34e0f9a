"""The fused engine against the reference (Keras fit): same batches, same numbers."""

import io

import keras
import numpy as np
import pytest

from fmnist import data, engines, normalization
from fmnist.config import TrainConfig
from fmnist.engines import batches
from fmnist.errors import UsageError
from fmnist.model import build_model
from fmnist.training.progress import Progress


def _train(engine_name, tiny_dir, epochs=2, live=False, batch_size=32):
    config = TrainConfig(epochs=epochs, valid_size=100, engine=engine_name, data_dir=str(tiny_dir),
                         verify=False, batch_size=batch_size)
    splits = data.split(data.load(tiny_dir, verify=False), config.valid_size)
    stats = normalization.get("standard").fit(splits.x_train)
    keras.utils.set_random_seed(config.seed)
    model = build_model("standard", stats)
    progress = Progress(epochs, stream=io.StringIO(), live=live)
    engine = engines.create(engine_name, model, splits, config, progress)
    history = [engine.train_epoch(epoch) for epoch in range(1, epochs + 1)]
    return [np.asarray(v) for v in model.trainable_variables + model.optimizer.variables], history, progress


def test_shuffle_order_depends_only_on_seed_and_epoch():
    first = batches.shuffle_order(0, 1, 50)
    assert np.array_equal(first, batches.shuffle_order(0, 1, 50))
    assert not np.array_equal(first, batches.shuffle_order(0, 2, 50))
    assert sorted(first) == list(range(50))


def test_fused_matches_keras_fit(tiny_dir):
    # 300 training images with batch 32: 9 full batches and a last partial batch of 12, as on the real data
    fused_weights, fused_history, _ = _train("fused", tiny_dir)
    keras_weights, keras_history, _ = _train("keras", tiny_dir)
    for ours, reference in zip(fused_weights, keras_weights):
        np.testing.assert_allclose(ours, reference, atol=1e-5)
    for ours, reference in zip(fused_history, keras_history):
        assert ours.keys() == reference.keys()
        for key in ours:
            assert ours[key] == pytest.approx(reference[key], abs=1e-4), key


def test_chunked_epoch_on_a_terminal_gives_the_same_result(tiny_dir):
    whole, history, _ = _train("fused", tiny_dir, live=False, batch_size=8)
    chunked, chunked_history, progress = _train("fused", tiny_dir, live=True, batch_size=8)
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)
    assert history == chunked_history
    assert "38/38" in progress.stream.getvalue()  # 300 images / 8 = 37 full batches + 1 partial


def test_fused_needs_jax():
    with pytest.raises(UsageError, match="^engine 'fused' needs the JAX backend"):
        engines.resolve("fused", "tensorflow")
    assert engines.resolve("auto", "tensorflow") == "keras"
    assert engines.resolve("auto", "jax") == "fused"
