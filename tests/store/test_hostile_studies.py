"""What `sweep --resume` and `compare --resume` trust. A study's files (study.json, its programs' progress
and states, its kept members' run folders) are read as data that may have been damaged or edited: each
edit below is refused in one line naming the file, exit 2, with nothing written or removed (nor a file
made outside the folder), before any training; the unedited study resumes. Also: a run folder that is
not the study's, put where a member's belongs, is refused; `--seeds` may be raised on resume.

One small sweep (two optimizers, two methods, one rate, one seed, two epochs: two programs of two
members) is stopped after the first epoch of its second program and copied once finished; each test
edits a copy, one file at a time, and puts the file back after each edit.
"""

import csv
import json
import os
import shutil
import signal
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_images, write_idx

from fmnist.cli import main

SWEEP = ["--methods", "none,standard", "--learning-rates", "0.01", "--optimizers", "sgd,momentum", "--seeds", "1",
         "--epochs", "2", "--valid-size", "100", "--extend-grid", "0", "--save-models", "all"]
MEMBERS = ["none-sgd-lr0.01-seed0", "standard-sgd-lr0.01-seed0", "none-momentum-lr0.01-seed0",
           "standard-momentum-lr0.01-seed0"]


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """(data options, an interrupted sweep, the same sweep finished, a finished one-member comparison)."""
    from fmnist.engines.members import MembersEngine

    root = tmp_path_factory.mktemp("studies")
    write_idx(root / "tiny", "train", *tiny_images(300, seed=1))
    write_idx(root / "tiny", "t10k", *tiny_images(60, seed=2))
    data = ["--data-dir", str(root / "tiny"), "--skip-checksum"]
    real_epoch, calls = MembersEngine.train_epoch, []

    def third_epoch_then_ctrl_c(self, epoch):  # sgd's two epochs, then momentum's first: Ctrl-C
        calls.append(epoch)
        result = real_epoch(self, epoch)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MembersEngine, "train_epoch", third_epoch_then_ctrl_c)
        assert main(["sweep", *SWEEP, *data, "--output-dir", str(root / "interrupted")]) == 130
    shutil.copytree(root / "interrupted", root / "finished")
    assert main(["sweep", "--resume", str(root / "finished")]) == 0
    assert main(["compare", "--methods", "standard", "--seeds", "1", "--epochs", "1", "--valid-size", "100", *data,
                 "--output-dir", str(root / "compare")]) == 0
    return data, root / "interrupted", root / "finished", root / "compare"


def _snapshot(folder: Path) -> dict:
    """Every path below ``folder`` with its inode, time and size: a file written, replaced or removed shows."""
    return {str(path.relative_to(folder)): (info.st_ino, info.st_mtime_ns, info.st_size)
            for path in sorted(folder.rglob("*")) for info in [path.lstat()]}


def _refused(capsys, command: list[str], folder: Path, *words: str, case) -> None:
    """``command`` exits 2 with one line holding each of ``words``, and leaves ``folder`` as it was."""
    before, outside = _snapshot(folder), sorted(os.listdir(folder.parent))
    code = main(command)
    captured = capsys.readouterr()
    assert code == 2, (case, captured)
    assert captured.err.startswith("fmnist: error: ") and captured.err.count("\n") == 1, (case, captured.err)
    assert "Traceback" not in captured.out + captured.err, case
    for part in words:
        assert part in captured.err, (case, part, captured.err)
    assert _snapshot(folder) == before, case
    assert sorted(os.listdir(folder.parent)) == outside, case


def _edit_json(path: Path, edit) -> None:
    """``edit``: a function that changes the loaded object in place, or the file's new text."""
    if isinstance(edit, str):
        path.write_text(edit)
        return
    recorded = json.loads(path.read_text())
    edit(recorded)
    path.write_text(json.dumps(recorded))


def _put(key_path, value):
    """An edit that sets recorded[key_path[0]][key_path[1]]... to ``value`` (None as the last key removes it)."""
    def edit(recorded):
        target = recorded
        for key in key_path[:-1]:
            target = target[key]
        if value is _REMOVE:
            del target[key_path[-1]]
        else:
            target[key_path[-1]] = value
    return edit


_REMOVE = object()

STUDY_EDITS = [
    # program names: a path, nothing, not text, twice
    (("programs", 0, "name"), "../../../escape-sweep", "is not a plain name"),
    (("programs", 0, "name"), "a/b", "is not a plain name"),
    (("programs", 0, "name"), "..", "is not a plain name"),
    (("programs", 0, "name"), "", "is not a plain name"),
    (("programs", 0, "name"), 5, "is not a plain name"),
    (("programs", 0, "name"), "x" * 101, "is not a plain name"),
    (("programs", 1, "name"), "sgd", "the name sgd is used twice"),
    # program members: not indices of the grid, twice, in two programs, none, another optimizer's
    (("programs", 0, "members"), [0, 0], "a member is in it twice"),
    (("programs", 0, "members"), [0, 99], "must be indices of the study's 4 members"),
    (("programs", 0, "members"), [-1, 1], "must be indices"),
    (("programs", 0, "members"), [0, True], "must be indices"),
    (("programs", 0, "members"), "01", "must be indices"),
    (("programs", 0, "members"), [], "must be indices"),
    (("programs", 1, "members"), [0, 1], "in another program too"),
    (("programs", 0, "members"), [0], "its programs hold 3 of the study's 4 members"),
    (("programs", 0, "optimizer"), "adam", "optimizer 'adam' is not one of the study's"),
    (("programs", 0, "optimizer"), "momentum", "damaged program sgd (it holds none-sgd-lr0.01-seed0, a member of"),
    (("programs", 0, "extra"), 1, "not a name, an optimizer and members"),
    (("programs", 0), "sgd", "not a name, an optimizer and members"),
    (("programs",), [], "its programs hold 0 of the study's 4 members"),
    (("programs",), {}, "damaged study file (no kind, settings, programs or data)"),
    # settings: other numbers than the programs' files were written under, wrong types, unknown
    (("settings", "epochs"), 3, "was written for another program or under other settings"),
    (("settings", "learning_rates"), [0.03], "was written for another program or under other settings"),
    (("settings", "methods"), ["standard", "none"], "was written for another program or under other settings"),
    (("settings", "seed"), 1, "was written for another program or under other settings"),
    (("settings", "batch_size"), 16, "was written for another program or under other settings"),
    (("settings", "seeds"), 2, "its programs hold 4 of the study's 8 members"),
    (("settings", "epochs"), "2", "damaged settings (epochs 2: must be an integer >= 1)"),
    (("settings", "epochs"), 0, "damaged settings"),
    (("settings", "epochs"), 2.0, "damaged settings"),
    (("settings", "seeds"), None, "damaged settings"),
    (("settings", "seed"), -1, "damaged settings"),
    (("settings", "methods"), "none", "damaged settings"),
    (("settings", "methods"), [["none"]], "damaged settings"),
    (("settings", "learning_rates"), ["0.01"], "damaged settings"),
    (("settings", "optimizers"), ["sgd", "sgd"], "damaged settings"),
    (("settings", "verify"), "no", "damaged settings (verify no: must be true or false)"),
    (("settings", "data_dir"), 5, "damaged settings (data_dir 5"),
    (("settings", "extra_rates"), [["sgd", "none", "fast"]], "damaged settings"),
    (("settings", "extra_rates"), 5, "damaged settings"),
    (("settings", "members_per_program"), "2", "damaged settings"),
    (("settings", "baseline"), "zscore", "damaged settings"),
    (("settings", "save_models"), "some", "damaged settings"),
    (("settings", "extend_grid"), -1, "damaged settings"),
    (("settings", "colour"), "red", "damaged settings (unknown setting 'colour')"),
    (("settings",), [], "damaged study file"),
    # the rest of the record
    (("kind",), "other", "damaged study file"),
    (("study_id",), 5, "damaged study_id (not a JSON string)"),
    (("study_id",), "another study", "programs/sgd/progress.json: belongs to another study"),
    (("environment",), [], "damaged environment (not a JSON object)"),
    (("data",), _REMOVE, "damaged study file"),
    (("data", "digests"), 5, "damaged data record"),
    (("data", "digests"), {"train-images-idx3-ubyte.gz": 1}, "damaged data record"),
    (("data", "source"), ["x"], "damaged data record"),
]


def test_edits_of_study_json_are_refused_before_any_training(studies, tmp_path, capsys):
    _, interrupted, _, _ = studies
    folder = tmp_path / "study"
    shutil.copytree(interrupted, folder)
    path, original = folder / "study.json", (folder / "study.json").read_bytes()
    for case in [*STUDY_EDITS, ((), "[]", "damaged study file (not a JSON object)"),
                 ((), "{", "damaged study file (not JSON"), ((), "", "damaged study file (not JSON")]:
        key_path, value, words = case
        _edit_json(path, value if not key_path else _put(key_path, value))
        named = "" if "progress.json" in words else str(path)  # or the program file that no longer fits it
        _refused(capsys, ["sweep", "--resume", str(folder)], folder, named, words, case=case)
        path.write_bytes(original)
    assert not (tmp_path.parent / "escape-sweep").exists() and not (folder.parent.parent / "escape-sweep").exists()
    # unedited, the study resumes (and the report of a damaged study.json is refused too: one reader)
    _edit_json(path, _put(("programs", 0, "name"), "../../../escape-sweep"))
    _refused(capsys, ["report", str(folder)], folder, f"{path}: ", "is not a plain name", case="report")
    path.write_bytes(original)
    assert main(["sweep", "--resume", str(folder)]) == 0
    finished = [(row["member"], row["status"], row["test_accuracy"]) for row in _csv(studies[2] / "members.csv")]
    assert [(row["member"], row["status"], row["test_accuracy"]) for row in _csv(folder / "members.csv")] == finished


def _member_row(position):
    return {"epoch": 1, "loss": 2.0, "accuracy": 0.1, "val_loss": 2.0, "val_accuracy": 0.1, "epoch_seconds": 0.5}


def _set_history(position, rows):
    def edit(progress):
        progress["history"][position] = rows
    return edit


def _both(*edits):
    def edit(progress):
        for one in edits:
            one(progress)
    return edit


PROGRESS_EDITS = [  # momentum's progress.json: epoch 1 of 2 trained
    (("epoch",), 0, "epoch 0: must be an integer from 1 to the study's 2"),
    (("epoch",), 3, "epoch 3: must be an integer from 1"),
    (("epoch",), "1", "epoch 1: must be an integer"),
    (("epoch",), 1.0, "must be an integer"),
    (("epoch",), True, "must be an integer"),
    (("epoch",), _REMOVE, "must be an integer"),
    (("epoch",), 2, "member 0 is alive: it needs 2 finite epochs, it has 1 of 1"),
    (("done",), "no", "done must be true or false"),
    (("done",), True, "true only after the last epoch"),
    (("seconds",), -1, "seconds -1: must be a number >= 0"),
    (("seconds",), "1", "must be a number >= 0"),
    (("alive",), [True], "alive must be 2 values true or false"),
    (("alive",), [1, 1], "alive must be 2 values"),
    (("alive",), "yes", "alive must be 2 values"),
    (("alive", 0), False, "member 0 diverged: its epochs must be finite up to the last, which is not"),
    (("history",), [], "history must hold 2 histories"),
    (("history",), "[]", "history must hold 2 histories"),
    (("history", 0), [], "member 0 is alive: it needs 1 finite epochs, it has 0 of 0"),  # a cut history
    (("history", 0), [_member_row(0)] * 2, "row 2 is epoch 1; the epochs must be 1, 2, … in order"),
    (("history", 0), 5, "damaged progress file, history of member 0 (not a list of rows)"),
    (("history", 0, 0), 5, "not a row of epoch, loss"),
    (("history", 0, 0, "loss"), "low", "loss 'low' is not a number"),
    (("history", 0, 0, "loss"), True, "is not a number"),
    (("history", 0, 0, "loss"), None, "member 0 is alive: it needs 1 finite epochs, it has 0 of 1"),
    (("history", 0, 0, "epoch"), 2, "row 1 is epoch 2"),
    (("history", 0, 0, "val_loss"), _REMOVE, "not a row of epoch, loss"),
    (("study_id",), "another study", "belongs to another study"),
    (("binding",), "0" * 64, "was written for another program or under other settings"),
    (("binding",), _REMOVE, "was written for another program or under other settings"),
    (("members",), [["standard", 0.01, 0], ["none", 0.01, 0]], "records other members than the program momentum"),
    (("members",), [["none", 0.01, 0]], "members must be 2 (method, learning rate, seed) triples"),
    (("members",), _REMOVE, "members must be 2"),
    (("arrays",), {}, "arrays must name each state array's shape and type"),
    (("arrays", "trainable_0"), [[784], "float32"],
     ("state-e0001-p0.npz: damaged checkpoint (trainable_0 is float32[2, 784, 300]; its members and progress.json "
      "make it float32[2, 784]")),
    (("arrays", "extra_0"), [[1], "float32"],
     "state-e0001-p0.npz: damaged checkpoint (its arrays are not those progress.json records"),
]


def test_edits_of_progress_files_are_refused_before_any_training(studies, tmp_path, capsys):
    _, interrupted, _, _ = studies
    folder = tmp_path / "study"
    shutil.copytree(interrupted, folder)
    path = folder / "programs" / "momentum" / "progress.json"
    original = path.read_bytes()
    raw = [((), "[]", "damaged progress file (not a JSON object)"), ((), "{", "damaged progress file (not JSON"),
           ((), "", "damaged progress file (not JSON")]
    for case in [*PROGRESS_EDITS, *raw]:
        key_path, value, words = case
        _edit_json(path, value if not key_path else _put(key_path, value))
        named = f"{path.parent}/" if ".npz" in words else f"{path}: "  # the state that does not fit it, or it
        _refused(capsys, ["sweep", "--resume", str(folder)], folder, named, words, case=case)
        path.write_bytes(original)
    # the finished program sgd: its test metrics
    done = folder / "programs" / "sgd" / "progress.json"
    original = done.read_bytes()
    for case in [(("test",), _REMOVE, "test must hold test_loss and test_accuracy"),
                 (("test", "test_loss"), [0.5], "test must hold"), (("test", "test_loss"), ["x", 1], "test must hold"),
                 (("test", "extra"), [1, 1], "test must hold"), (("epoch",), 1, "true only after the last epoch")]:
        key_path, value, words = case
        _edit_json(done, _put(key_path, value))
        _refused(capsys, ["sweep", "--resume", str(folder)], folder, f"{done}: ", words, case=case)
        done.write_bytes(original)
    # progress.json not a file: a folder, a FIFO (never waited on)
    path.unlink()
    path.mkdir()
    _refused(capsys, ["sweep", "--resume", str(folder)], folder, f"{path}: progress file cannot be read (not a "
             "regular file", case="a folder")
    path.rmdir()
    os.mkfifo(path)
    _refused(capsys, ["sweep", "--resume", str(folder)], folder, f"{path}: progress file cannot be read (not a "
             "regular file (FIFO))", case="a FIFO")
    path.unlink()
    path.write_bytes(original)


def _rewrite_npz(path: Path, change) -> None:
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    change(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _nan_weights(arrays):
    arrays["trainable_0"] = arrays["trainable_0"].copy()
    arrays["trainable_0"][0, 0, 0] = np.nan


STATE_EDITS = [  # momentum's state-e0001-p0.npz
    (_nan_weights, "damaged checkpoint (trainable_0 holds values that are not finite"),
    (lambda a: a.update(optimizer_1=np.full_like(a["optimizer_1"], np.inf)),
     "optimizer_1 holds values that are not finite"),
    (lambda a: a.update(members=np.array([0, 0])), "its members are not positions of the program's 2 members"),
    (lambda a: a.update(members=np.array([0, 5])), "its members are not positions"),
    (lambda a: a.update(members=np.array([[0, 1]])), "its members are not positions"),
    (lambda a: a.update(members=np.array([0.0, 1.0])), "its members are not positions"),
    (lambda a: a.update(members=np.array([0])),
     "trainable_0 is float32[2, 784, 300]; its members and progress.json make it float32[1, 784, 300]"),
    (lambda a: a.update(trainable_0=a["trainable_0"][:, :10]),
     "trainable_0 is float32[2, 10, 300]; its members and progress.json make it float32[2, 784, 300]"),
    (lambda a: a.update(trainable_0=a["trainable_0"].astype(np.float64)), "trainable_0 is float64"),
    (lambda a: a.pop("trainable_1"), "its arrays are not those progress.json records"),
    (lambda a: a.update(extra=np.zeros(2)), "its arrays are not those progress.json records"),
    (lambda a: a.pop("members"), "damaged checkpoint"),
    (lambda a: a.update(study_id=np.array("another study")), "belongs to another study"),
    (lambda a: a.update(binding=np.array("0" * 64)), "belongs to another program or epoch"),
    (lambda a: a.pop("binding"), "belongs to another program or epoch"),
    (lambda a: a.update(epoch=np.array(2)), "belongs to another program or epoch"),
]


def test_damaged_or_foreign_program_states_are_refused(studies, tmp_path, capsys):
    _, interrupted, _, _ = studies
    folder = tmp_path / "study"
    shutil.copytree(interrupted, folder)
    path = folder / "programs" / "momentum" / "state-e0001-p0.npz"
    original = path.read_bytes()
    command = ["sweep", "--resume", str(folder)]
    for case in STATE_EDITS:
        change, words = case
        _rewrite_npz(path, change)
        _refused(capsys, command, folder, f"{path}: ", words, case=case)
        path.write_bytes(original)
    for case, payload in [("empty", b""), ("not a zip", b"PK\x03\x04 not a zip"), ("cut", original[:1000])]:
        path.write_bytes(payload)
        _refused(capsys, command, folder, f"{path}: damaged checkpoint", case=case)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("trainable_0.npy", "w", force_zip64=True) as member:  # 64 kB that inflate to 64 MiB
        for _ in range(64):
            member.write(bytes(2**20))
    _refused(capsys, command, folder, f"{path}: its arrays claim 67,108,864 bytes; over the limit of 33,554,432",
             case="a bomb")
    # another program's state (sgd's last), put in momentum's place: refused, whatever its epoch in the name
    shutil.copy(folder / "programs" / "sgd" / "state-e0002-p0.npz", path)
    _refused(capsys, command, folder, f"{path}: belongs to another program or epoch", case="another program's")
    path.unlink()
    _refused(capsys, command, folder, f"{path.parent}: no saved state of epoch 1 for members [0, 1]", case="missing")
    # a finished program's states are read again for its kept models: checked too
    path.write_bytes(original)
    done = folder / "programs" / "sgd" / "state-e0002-p0.npz"
    _rewrite_npz(done, _nan_weights)
    _refused(capsys, command, folder, f"{done}: damaged checkpoint (trainable_0 holds values that are not finite",
             case="a finished program's")


KEPT_EDITS = [  # a finished member's config.json
    (("settings", "learning_rate"), 0.1, "no longer what this study wrote for its member"),
    (("settings", "seed"), 3, "no longer what this study wrote"),
    (("settings", "normalization"), "rescale", "no longer what this study wrote"),
    (("settings", "epochs"), 1, "no longer what this study wrote"),
    (("run_id",), "another run", "no longer what this study wrote"),
    (("data", "digests", "train-images-idx3-ubyte.gz"), "0" * 64, "no longer what this study wrote"),
    (("study_member", "binding"), _REMOVE, "no longer what this study wrote"),
    (("study_member", "study_id"), "another study", "holds a run that is not this study's member"),
    (("study_member",), _REMOVE, "holds a run that is not this study's member"),
    (("settings", "name"), "other", "holds a run that is not this study's member"),
    (("settings", "epochs"), "2", "holds a run that is not this study's member"),  # a damaged config.json
]


def test_a_kept_member_folder_that_changed_is_refused_not_adopted(studies, tmp_path, capsys):
    _, _, finished, compare = studies
    folder = tmp_path / "study"
    shutil.copytree(finished, folder)
    member = folder / MEMBERS[1]
    config, original = member / "config.json", (member / "config.json").read_bytes()
    command = ["sweep", "--resume", str(folder)]
    for case in KEPT_EDITS:
        key_path, value, words = case
        _edit_json(config, _put(key_path, value))
        _refused(capsys, command, folder, str(member), words, case=case)
        config.write_bytes(original)
    # the study has finished (its states are gone): the advice is to train the program again
    _edit_json(config, _put(("settings", "learning_rate"), 0.1))
    _refused(capsys, command, folder, f"{config}: no longer what", f"move the folder away and remove "
             f"{folder / 'programs' / 'sgd'} to train its program again", case="advice")
    config.write_bytes(original)
    model = member / "model.keras"
    kept = model.read_bytes()
    model.unlink()
    _refused(capsys, command, folder, f"{model}: missing or not a file, though metrics.json says the member finished",
             case="no model")
    model.symlink_to(finished / MEMBERS[0] / "model.keras")
    _refused(capsys, command, folder, f"{model}: missing or not a file", case="a link")
    model.unlink()
    model.write_bytes(kept)
    metrics = member / "metrics.json"
    kept_metrics = metrics.read_bytes()
    for case in [(("diverged",), "no", "damaged metrics file"), ((), "[]", "damaged metrics file (not a JSON object)")]:
        key_path, value, words = case
        _edit_json(metrics, value if not key_path else _put(key_path, value))
        _refused(capsys, command, folder, f"{metrics}: ", words, case=case)
        metrics.write_bytes(kept_metrics)
    assert main(command) == 0  # as it was: resumes (nothing left to train)
    capsys.readouterr()
    # a kept folder gone, or half-written, once the states are removed: refused up front; the advice works
    shutil.move(member / "metrics.json", tmp_path / "metrics.json")
    advice = f"remove {folder / 'programs' / 'sgd'} to train its program again"
    _refused(capsys, command, folder, f"{member}: the kept member {MEMBERS[1]} is gone or half-written", advice,
             case="half-written")
    shutil.move(member, tmp_path / "moved")
    _refused(capsys, command, folder, f"{member}: the kept member {MEMBERS[1]} is gone", advice, case="gone")
    shutil.rmtree(folder / "programs" / "sgd")
    assert main(command) == 0
    assert (member / "model.keras").is_file() and (member / "metrics.json").is_file()
    keys = ("member", "status", "test_accuracy", "run_dir")
    assert [[row[key] for key in keys] for row in _csv(folder / "members.csv")] == [
        [row[key] for key in keys] for row in _csv(finished / "members.csv")]
    capsys.readouterr()

    # compare adopts nothing changed either
    folder = tmp_path / "compare"
    shutil.copytree(compare, folder)
    config = folder / "standard-seed0" / "config.json"
    _edit_json(config, _put(("settings", "learning_rate"), 0.02))
    _refused(capsys, ["compare", "--resume", str(folder)], folder, f"{config}: no longer what this study wrote",
             case="compare: config.json")
    config.write_bytes((compare / "standard-seed0" / "config.json").read_bytes())
    (folder / "standard-seed0" / "model.keras").unlink()
    _refused(capsys, ["compare", "--resume", str(folder)], folder, "standard-seed0/model.keras: missing",
             case="compare: model.keras")


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
    assert (f"--resume {out}: seeds 1 differs from the compare's 2; resuming refuses changes that alter the result (it "
            "may only add seeds)") in capsys.readouterr().err
