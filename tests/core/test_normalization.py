import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from fmnist import normalization
from fmnist.errors import UsageError
from fmnist.model import TRAINABLE_PARAMETERS, build_model


def _apply(method, stats, images):
    out = images
    for layer in normalization.get(method).build(stats):
        out = layer(out)
    return np.asarray(out)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(64, 28, 28)).astype(np.uint8)


def test_standard_layer_equals_the_tutorials_standard_scaler(images):
    train, test = images[:48], images[48:]
    scaler = StandardScaler()
    expected_train = scaler.fit_transform(train.astype(np.float32).reshape(-1, 1)).reshape(-1, 28, 28)
    expected_test = scaler.transform(test.astype(np.float32).reshape(-1, 1)).reshape(-1, 28, 28)
    stats = normalization.get("standard").fit(train)
    np.testing.assert_allclose(_apply("standard", stats, train), expected_train, atol=1e-6)
    np.testing.assert_allclose(_apply("standard", stats, test), expected_test, atol=1e-6)
    ours = normalization.GlobalStandardScaler().fit(train)
    np.testing.assert_allclose(ours.transform(test), expected_test, atol=1e-6)


def test_per_pixel_matches_standard_scaler_per_feature_and_keeps_constant_pixels(images):
    images = images.copy()
    images[:, 0, 0] = 7  # a constant pixel: sklearn gives it scale 1
    scaler = StandardScaler().fit(images.reshape(len(images), -1).astype(np.float64))
    expected = scaler.transform(images.reshape(len(images), -1).astype(np.float64)).reshape(-1, 28, 28)
    stats = normalization.get("per-pixel").fit(images)
    np.testing.assert_allclose(_apply("per-pixel", stats, images), expected, atol=1e-5)
    assert np.all(_apply("per-pixel", stats, images)[:, 0, 0] == 0)


def test_other_methods(images):
    assert np.allclose(_apply("none", {}, images), images)
    assert np.allclose(_apply("rescale", {}, images), images / 255.0)
    stats = normalization.get("minmax").fit(images[:, 5:20, 5:20])
    scaled = _apply("minmax", stats, images[:, 5:20, 5:20])
    assert scaled.min() == pytest.approx(0) and scaled.max() == pytest.approx(1)
    per_image = _apply("per-image", {}, images)
    np.testing.assert_allclose(per_image.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(per_image.std(axis=(1, 2)), 1, atol=1e-4)
    assert np.all(_apply("per-image", {}, np.full((1, 28, 28), 9, np.uint8)) == 0)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(UsageError, match="unknown normalization 'zscore'; choose from none, rescale"):
        normalization.get("zscore")


@pytest.mark.parametrize("method", sorted(normalization.METHODS))
def test_model_has_the_tutorials_parameter_count(method, images):
    stats = normalization.get(method).fit(images)
    model = build_model(method, stats)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert trainable == TRAINABLE_PARAMETERS == 266_610
    assert model.predict(images[:3], verbose=0).shape == (3, 10)


@pytest.mark.parametrize("method", sorted(normalization.METHODS))
def test_scaled_range_equals_the_range_over_every_image(method, images):
    from fmnist.training.train import scaled_range

    stats = normalization.get(method).fit(images)
    everything = _apply(method, stats, images)
    assert scaled_range(method, stats, images) == (everything.max(), everything.min())


@pytest.mark.parametrize("method", sorted(normalization.METHODS))
def test_every_method_saves_and_reloads_in_safe_mode(method, images, tmp_path):
    from fmnist.inference.load import load_model

    model = build_model(method, normalization.get(method).fit(images))
    model.save(tmp_path / "model.keras")
    reloaded = load_model(tmp_path / "model.keras")  # safe mode, .keras only
    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), model.predict(images, verbose=0))
