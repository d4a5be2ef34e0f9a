"""What `compare --resume` trusts (issue 10, item 3 and friction): a run folder that is not the study's,
put where a member's belongs, is refused before any training and left as it was; another study's progress
file is refused; `--seeds` may be raised on resume, training only the new seeds' members and keeping the
finished ones (their seconds included)."""

import csv
import json
import shutil

from fmnist.cli import main


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_compare_resume_adds_seeds_and_adopts_nothing_foreign(tmp_path, tiny_args, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--methods", "standard", "--seeds", "1", *tiny_args, "--epochs", "1",
                 "--output-dir", str(out)]) == 0
    first = _csv(out / "runs.csv")
    capsys.readouterr()

    # more seeds: only the new member trains; the finished one keeps its numbers and its seconds
    assert main(["compare", "--resume", str(out), "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "[sgd 1/2] finished earlier: 1 members" in printed and "[sgd-seeds1 2/2] epoch 1/1" in printed
    rows = _csv(out / "runs.csv")
    assert [(row["method"], row["seed"]) for row in rows] == [("standard", "0"), ("standard", "1")]
    assert rows[0] == first[0] and float(rows[0]["seconds"]) > 0
    study = json.loads((out / "study.json").read_text())
    assert study["settings"]["seeds"] == 2 and [p["name"] for p in study["programs"]] == ["sgd", "sgd-seeds1"]
    assert (out / "standard-seed1" / "model.keras").is_file()

    # a run made elsewhere (another run id, no study), put where a member's folder belongs: refused at once,
    # left as it was
    foreign = out / "standard-seed1"
    config = json.loads((foreign / "config.json").read_text())
    config.pop("study_member")
    (foreign / "config.json").write_text(json.dumps(config | {"run_id": "another run"}))
    before = {path.name: path.read_bytes() for path in (out / "standard-seed1").iterdir()}
    assert main(["compare", "--resume", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"{out / 'standard-seed1'}: holds a run that is not this study's member standard-seed1" in captured.err
    assert {path.name: path.read_bytes() for path in (out / "standard-seed1").iterdir()} == before

    # another study's progress file
    shutil.rmtree(out / "standard-seed1")
    progress = out / "programs" / "sgd" / "progress.json"
    record = json.loads(progress.read_text())
    progress.write_text(json.dumps(record | {"study_id": "another study"}))
    assert main(["compare", "--resume", str(out)]) == 2
    assert f"{progress}: belongs to another study" in capsys.readouterr().err
    assert main(["compare", "--resume", str(out), "--seeds", "1"]) == 2
    assert f"--resume {out}: seeds 1 differs from the compare's 2; resuming refuses changes that alter the result (it may only add seeds)" in capsys.readouterr().err
