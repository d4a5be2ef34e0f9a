"""The tutorial on the real Fashion-MNIST (skipped when the dataset is not installed)."""

import json
import subprocess
import sys

import pytest

from fmnist.cli import main

pytestmark = pytest.mark.integration


def test_tutorial_reproduced_end_to_end(tmp_path, real_dir, capsys):
    out = tmp_path / "tutorial"
    assert main(["train", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pixel range: 255 0" in printed
    assert "scaled training range (standard): 2.0231433 -0.8105136" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split_sizes"] == {"train": 55_000, "valid": 5_000, "test": 10_000}
    assert 0.870 <= metrics["test_accuracy"] <= 0.890  # the tutorial: 0.8825
    script = (
        "import sys, keras\n"
        "from fmnist import data\n"
        "model = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "d = data.load()\n"
        "print((model.predict(d.x_test, verbose=0).argmax(-1) == d.y_test).mean())\n"
    )
    fresh = subprocess.run([sys.executable, "-c", script, str(out / "model.keras")],
                           capture_output=True, text=True, check=True)
    assert float(fresh.stdout.strip().splitlines()[-1]) == pytest.approx(metrics["test_accuracy"], abs=1e-4)
