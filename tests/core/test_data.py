from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_images, write_idx
from damaged_data import DAMAGES, gz, raw

from fmnist import data
from fmnist.errors import DataError


def test_loads_tiny_files(tiny_dir):
    dataset = data.load(tiny_dir, verify=False)
    assert dataset.x_train.shape == (400, 28, 28) and dataset.x_train.dtype == np.uint8
    assert dataset.y_test.shape == (100,)
    assert dataset.source == tiny_dir and not dataset.verified


def test_split_takes_the_first_images_as_validation(tiny_dir):
    dataset = data.load(tiny_dir, verify=False)
    splits = data.split(dataset, valid_size=100)
    assert np.array_equal(splits.x_valid, dataset.x_train[:100])
    assert np.array_equal(splits.x_train, dataset.x_train[100:])
    assert splits.sizes() == {"train": 300, "valid": 100, "test": 100}
    with pytest.raises(DataError, match="^valid_size 400: must be between 1 and 399"):
        data.split(dataset, valid_size=400)


def test_verification_refuses_other_content(tiny_dir):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: content differs"):
        data.load(tiny_dir)


def test_named_folder_is_used_or_refused_never_replaced(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    write_idx(tmp_path / "keras" / "datasets" / "fashion-mnist", "train", *tiny_images(20, 0))
    with pytest.raises(DataError, match="does not exist"):
        data.find_data_dir(tmp_path / "nowhere")
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere: data folder does not exist"):
        data.find_data_dir(None)
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tiny_dir))
    assert data.find_data_dir(None) == tiny_dir


def test_search_order_keras_cache_then_debian(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.delenv("FMNIST_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "DEBIAN_DIR", tiny_dir)
    assert data.find_data_dir(None) == tiny_dir
    cache = tmp_path / "keras" / "datasets" / "fashion-mnist"
    write_idx(cache, "train", *tiny_images(20, 0))
    write_idx(cache, "t10k", *tiny_images(20, 1))
    assert data.find_data_dir(None) == cache
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "absent")
    cache.joinpath("t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.find_data_dir(None)


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_folder_names_the_file(tiny_dir, damage):
    spoil, message = DAMAGES[damage]
    spoil(tiny_dir)
    with pytest.raises(DataError) as caught:
        data.load(tiny_dir, verify=False)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.integration
def test_altered_and_swapped_real_files_are_named(tmp_path, real_dir):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in data.FILES:
        (folder / name).write_bytes((real_dir / name).read_bytes())
    # swap the training and test images: both parse, only the content pin can tell
    train, test = folder / "train-images-idx3-ubyte.gz", folder / "t10k-images-idx3-ubyte.gz"
    payload = train.read_bytes()
    train.write_bytes(test.read_bytes())
    test.write_bytes(payload)
    with pytest.raises(DataError, match="holds the content of t10k-images-idx3-ubyte.gz"):
        data.load(folder)
    # one altered pixel
    pixels = bytearray(raw(test))
    pixels[1000] ^= 1
    gz(train, bytes(pixels))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: content differs"):
        data.load(folder)


@pytest.mark.integration
def test_real_data_matches_the_tutorial(real_dir):
    dataset = data.load()
    assert dataset.verified
    assert (len(dataset.y_train), len(dataset.y_test)) == (60_000, 10_000)
    info = data.describe(dataset)
    assert (info["pixel_max"], info["pixel_min"]) == (255, 0)


def _fake_get_file(source_folder, calls):
    def get_file(fname, origin, cache_dir, cache_subdir):
        calls.append(origin)
        target = Path(cache_dir) / cache_subdir / fname
        target.write_bytes((source_folder / fname).read_bytes())
        return str(target)

    return get_file


def test_download_rejects_other_content_and_leaves_the_cache_as_it_was(tmp_path, tiny_dir, monkeypatch):
    import keras

    calls = []
    monkeypatch.setattr(keras.utils, "get_file", _fake_get_file(tiny_dir, calls))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: content differs"):
        data.download(cache)
    assert calls == [data.MIRROR + "train-images-idx3-ubyte.gz"]
    assert list(cache.iterdir()) == []  # nothing half-done, no staging folder left


@pytest.mark.integration
def test_download_verifies_and_fills_the_cache(tmp_path, real_dir, monkeypatch):
    import keras

    calls = []
    monkeypatch.setattr(keras.utils, "get_file", _fake_get_file(real_dir, calls))
    cache = data.download(tmp_path / "cache")
    assert sorted(p.name for p in cache.iterdir()) == sorted(data.FILES) and len(calls) == 4
    assert data.load(cache).verified
    data.download(cache)  # already there: nothing fetched again
    assert len(calls) == 4
