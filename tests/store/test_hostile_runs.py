"""Run folders, options and outputs (issue 10, items 2, 8-11 and the new user's friction): a checkpoint or
config that is not the run's is refused in one line and changes nothing; options are checked before a
folder is made; an output that cannot be written is said in one line before the work (or, for a disk that
fills, when it does) and leaves every file whole; an unreadable data folder is reported.

And the files `report` and `train --resume` read, damaged or edited one at a time (a history that is not
numbers or not epochs 1..N, a field or a table too large, JSON of the wrong types, missing columns, a
picture or member folder that leads out of the folder): each refused in one line naming the file, exit 2,
with report.html and every other file as they were."""

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import as_nobody, tiny_images, write_idx

from fmnist import data
from fmnist.cli import main
from fmnist.errors import DataError
from fmnist.guard import limits
from fmnist.store import artifacts


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny data and two finished one-epoch runs: A (standard, seed 0), B (none, seed 1: stuck at chance)."""
    root = tmp_path_factory.mktemp("runs")
    write_idx(root / "tiny", "train", *tiny_images(300, seed=1))
    write_idx(root / "tiny", "t10k", *tiny_images(60, seed=2))
    args = ["--data-dir", str(root / "tiny"), "--skip-checksum", "--valid-size", "60", "--epochs", "1", "--quiet"]
    assert main(["train", *args, "--output-dir", str(root / "A")]) == 0
    assert main(["train", *args, "--seed", "1", "--normalization", "none", "--output-dir", str(root / "B")]) == 0
    return root, args


def _files(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(Path(folder).rglob("*")) if path.is_file()}


def _one_line(capsys, code, expected_code, words):
    captured = capsys.readouterr()
    assert code == expected_code, captured
    assert captured.err.startswith("fmnist: error: ") and captured.err.count("\n") == 1, captured.err
    assert words in captured.err, captured.err
    return captured.err


def test_a_checkpoint_or_config_that_is_not_the_runs_own_is_refused(setup, tmp_path, capsys):
    root, _ = setup
    run = tmp_path / "A"
    shutil.copytree(root / "A", run)
    shutil.copy(root / "B" / "checkpoint.npz", run)  # B: another seed, another normalization
    before = _files(run)
    _one_line(capsys, main(["train", "--resume", str(run), "--epochs", "6"]), 2, "checkpoint.npz: belongs to another run")
    assert _files(run) == before  # config.json still says 1 epoch; history.csv is A's
    # A's own checkpoint under a config.json whose seed was edited since
    shutil.copy(root / "A" / "checkpoint.npz", run)
    config = json.loads((run / "config.json").read_text())
    config["settings"]["seed"] = 7
    (run / "config.json").write_text(json.dumps(config))
    before = _files(run)
    _one_line(capsys, main(["train", "--resume", str(run), "--epochs", "2"]), 2, "written under other settings or data")
    assert _files(run) == before


def _inflating_checkpoint(run):
    """A checkpoint.npz whose one member inflates to 300 MB of zeros (a 300 kB file)."""
    import zipfile

    with zipfile.ZipFile(run / "checkpoint.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("trainable_0.npy", "w", force_zip64=True) as member:
            for _ in range(300):
                member.write(bytes(2**20))


@pytest.mark.parametrize("damage, words", [
    (lambda run: (run / "checkpoint.npz").write_bytes(b""), "checkpoint.npz: damaged checkpoint (No data left in file)"),
    (_inflating_checkpoint, "checkpoint.npz: its arrays claim 314,572,800 bytes; over the limit of 268,435,456"),
    (lambda run: (run / "checkpoint.npz").write_bytes(b"PK\x03\x04 not a zip"), "checkpoint.npz: damaged checkpoint"),
    (lambda run: (run / "config.json").write_text("{not json"), "config.json: damaged file (not JSON: "),
    (lambda run: (run / "config.json").write_text("[]"), "config.json: damaged file (not a JSON object)"),
    (lambda run: (run / "config.json").write_text("{}"), "config.json: damaged run configuration (no settings)"),
])
def test_damaged_resume_files_are_named(setup, tmp_path, capsys, damage, words):
    root, _ = setup
    run = tmp_path / "A"
    shutil.copytree(root / "A", run)
    damage(run)
    before = _files(run)
    _one_line(capsys, main(["train", "--resume", str(run), "--epochs", "2"]), 2, f"{run}/{words}")
    assert _files(run) == before


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**70)])
def test_seeds_out_of_range_are_refused_before_any_folder(setup, tmp_path, capsys, seed):
    _, args = setup
    _one_line(capsys, main(["train", *args, "--seed", seed, "--output-dir", str(tmp_path / "run")]), 2,
              f"--seed {seed}: must be an integer from 0 to 4294967295")
    compare = [arg for arg in args if arg != "--quiet"]
    _one_line(capsys, main(["compare", *compare, "--methods", "standard", "--seeds", "2", "--seed", "4294967295",
                            "--output-dir", str(tmp_path / "cmp")]), 2, "--seed 4294967295: must be an integer from 0 to 4294967294")
    assert sorted(tmp_path.iterdir()) == []


@contextlib.contextmanager
def _mounted(size: str, read_only: bool = False):
    """A tmpfs of ``size`` (root only): a disk that fills, or a read-only one."""
    folder = Path(tempfile.mkdtemp(prefix="fmnist-mount-"))
    options = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                           capture_output=True).returncode:
        folder.rmdir()
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()


def test_outputs_that_cannot_be_written_are_one_line_before_the_work(setup, tmp_path, capsys):
    root, args = setup
    _one_line(capsys, main(["train", *args, "--output-dir", "/proc/foo"]), 2,
              "--output-dir /proc/foo: cannot write (no such file or directory)")
    _one_line(capsys, main(["train", *args, "--name", "n" * 300]), 2, "--name: 300 bytes; at most 200")
    _one_line(capsys, main(["data", "show", *args[:3], "--output", "/no/such/dir/x.png"]), 2,
              "--output /no/such/dir/x.png: give a .png file in an existing folder")
    with _mounted("16m", read_only=True) as read_only:
        _one_line(capsys, main(["train", *args, "--output-dir", str(read_only / "run")]), 2,
                  f"--output-dir {read_only / 'run'}: cannot write (read-only file system)")
        shutil.copytree(root / "A", tmp_path / "A")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "remount,rw", "tmpfs", str(read_only)], check=True)
        shutil.copytree(root / "A", read_only / "A")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "remount,ro", "tmpfs", str(read_only)], check=True)
        before = _files(read_only / "A")
        _one_line(capsys, main(["evaluate", str(read_only / "A"), *args[:3]]), 2,
                  f"{read_only / 'A'}: cannot write there (read-only file system); the report goes beside the model "
                  "unless --output-dir names another folder")
        assert _files(read_only / "A") == before
        assert main(["evaluate", str(read_only / "A"), *args[:3], "--output-dir", str(tmp_path / "report")]) == 0
        assert "test images of" in capsys.readouterr().out
        assert {"evaluation.json", "confusion_matrix.png", "mistakes.png"} <= set(os.listdir(tmp_path / "report"))


def test_a_disk_that_fills_mid_run_exits_1_and_keeps_its_files(setup, capsys):
    _, args = setup
    with _mounted("64k") as small:  # config.json fits; the first checkpoint (3 MB) does not
        code = main(["train", *args, "--output-dir", str(small / "run")])
        err = _one_line(capsys, code, 1, "cannot write (no space left on device)")
        assert "checkpoint.npz" in err
        # whole, and no temporary left: history.csv agrees with the (absent) checkpoint
        assert sorted(os.listdir(small / "run")) == ["config.json", "events.out.tfevents.fmnist", "history.csv", "train",
                                                     "validation"]
        assert json.loads((small / "run" / "config.json").read_text())["settings"]["epochs"] == 1
        assert (small / "run" / "history.csv").read_text() == "epoch,loss,accuracy,val_loss,val_accuracy,epoch_seconds\n"


def test_unreadable_data_folders(setup, tmp_path, capsys, monkeypatch):
    root, args = setup
    closed = Path(tempfile.mkdtemp(prefix="fmnist-closed-"))
    try:
        shutil.copytree(root / "tiny", closed / "tiny")
        closed.chmod(0o755)
        (closed / "tiny").chmod(0)
        with as_nobody():
            code = main(["data", "info", "--data-dir", str(closed / "tiny"), "--skip-checksum"])
        _one_line(capsys, code, 2, f"{closed / 'tiny'}/train-images-idx3-ubyte.gz: permission denied")
        # the Keras cache, never named: reported and skipped for the next source
        monkeypatch.delenv("FMNIST_DATA_DIR", raising=False)
        monkeypatch.setenv("KERAS_HOME", str(closed / "keras"))
        (closed / "keras" / "datasets").mkdir(parents=True)
        (closed / "tiny").rename(closed / "keras" / "datasets" / "fashion-mnist")
        (closed / "keras").chmod(0o755)
        (closed / "keras" / "datasets").chmod(0o755)
        shutil.copytree(root / "tiny", closed / "debian")
        monkeypatch.setattr(data, "DEBIAN_DIR", closed / "debian")
        with as_nobody():
            code = main(["data", "info", "--skip-checksum"])
        captured = capsys.readouterr()
        assert code == 0 and f"source:             {closed / 'debian'}" in captured.out
        assert captured.err == (f"fmnist: warning: skipping {closed}/keras/datasets/fashion-mnist/"
                                "train-images-idx3-ubyte.gz: permission denied\n")
    finally:
        for folder, _, _ in os.walk(closed):
            os.chmod(folder, 0o755)
        shutil.rmtree(closed)


def test_a_run_stuck_at_chance_says_so(setup, capsys):
    root, _ = setup
    metrics = json.loads((root / "B" / "metrics.json").read_text())
    assert metrics["status"] == "stuck at chance" and metrics["diverged"] is False
    assert json.loads((root / "A" / "metrics.json").read_text())["status"] == "ok"


def test_evaluate_says_which_data_it_scores(setup, tmp_path, capsys):
    root, args = setup
    write_idx(tmp_path / "other", "train", *tiny_images(300, seed=8))
    write_idx(tmp_path / "other", "t10k", *tiny_images(60, seed=9))
    shutil.copytree(root / "A", tmp_path / "A")
    assert main(["evaluate", str(tmp_path / "A"), "--data-dir", str(tmp_path / "other"), "--skip-checksum"]) == 0
    captured = capsys.readouterr()
    assert f"(60 test images of {tmp_path / 'other'}, checksum not verified)" in captured.out
    assert captured.err == (f"fmnist: warning: the model was trained on other data ({root / 'tiny'}) than the test "
                            f"set scored here ({tmp_path / 'other'})\n"
                            f"fmnist: wrote {tmp_path / 'A' / 'report.html'}\n")  # the report now shows the evaluation


@pytest.mark.parametrize("command", [[], ["train"], ["compare"], ["sweep"], ["predict"], ["evaluate"], ["export"],
                                     ["serve"], ["report"], ["data"], ["data", "info"], ["data", "show"],
                                     ["data", "download"]])
def test_every_help_has_a_description_and_the_exit_codes(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    raw = capsys.readouterr().out
    paragraphs = raw.split("\n\n")
    assert paragraphs[0].startswith("usage: ")
    assert not paragraphs[1].startswith(("options:", "positional arguments:")), raw  # a description comes first
    printed = " ".join(raw.split())
    assert "141 the output pipe was closed" in printed
    # a signal: only what trains resumes; the service ends with 0
    if command[:1] in (["train"], ["compare"], ["sweep"]):
        assert "130/143 stopped by Ctrl-C/SIGTERM (resumable with --resume)" in printed
    elif command == ["serve"]:
        assert "0 also when stopped by Ctrl-C/SIGTERM" in printed and "130/143" not in printed
    elif command:
        assert "130/143 stopped by Ctrl-C/SIGTERM," in printed and "resum" not in printed
    if command[:1] in (["predict"], ["data"], ["evaluate"]):
        assert "diverged" not in printed


ODD_VALUES = ["0", "-1", "1e309", "nan", "inf", "-inf", "", "1" * 80, "0x10", "1.5", "\x00", "é"]
OPTIONS = {
    ("train", "--data-dir", "/nonexistent"): ["--epochs", "--batch-size", "--learning-rate", "--seed", "--valid-size",
                                              "--normalization", "--optimizer", "--engine", "--name"],
    ("compare", "--data-dir", "/nonexistent"): ["--seeds", "--methods", "--baseline", "--learning-rate", "--seed"],
    ("sweep", "--data-dir", "/nonexistent"): ["--learning-rates", "--methods", "--optimizers", "--seeds",
                                              "--members-per-program", "--num-processes", "--process-id"],
    ("serve", "/nonexistent.keras"): ["--port", "--max-body-mb", "--max-pixels", "--timeout"],
    ("data", "show", "--data-dir", "/nonexistent"): ["--per-class", "--output"],
}


def test_odd_option_values_get_one_line_and_create_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would appear here
    for command, options in OPTIONS.items():
        for option in options:
            for value in ODD_VALUES:
                try:
                    code = main([*command, option, value])
                except SystemExit as stop:  # argparse: a value of the wrong type
                    code = stop.code
                err = capsys.readouterr().err
                assert code == 2, (command, option, value, err)
                assert err.count("\n") == 1 or err.startswith("usage: "), (command, option, value, err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["$$", "$x^2$", "a$b_c", "\\$\\frac{1}{", "100%$", "\udcff", "caf\udce9-$\udcfe",
                                  "tab\there"])
def test_names_that_look_like_tex_or_are_not_utf8_are_drawn_as_written(setup, tmp_path, name):
    """matplotlib's mathtext would parse a '$' in a run name or file name (and fail after training), and a
    file name's bytes that are not UTF-8 (os.fsdecode's surrogates) cannot be drawn, put into a TensorBoard
    protobuf or a UTF-8 page: every figure draws text as written, escapes go where UTF-8 must. Train,
    resume, the report and a predict sheet, each with such names."""
    root, args = setup
    out = tmp_path / "run"
    assert main(["train", *args, "--name", name, "--output-dir", str(out)]) == 0
    assert (out / "learning_curves.png").stat().st_size and (out / "metrics.json").is_file()
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert main(["report", str(out)]) == 0 and (out / "report.html").read_bytes().decode("utf-8")
    elsewhere = tmp_path / f"out-{name}"  # the same in the folder's own name
    assert main(["train", *args, "--output-dir", str(elsewhere)]) == 0 and (elsewhere / "report.html").is_file()
    picture = tmp_path / f"{name.replace('/', '_')}.npy"
    np.save(picture, tiny_images(1, seed=3)[0][0])
    sheet = tmp_path / "sheet.png"
    assert main(["predict", str(root / "A"), str(picture), "--sheet", str(sheet)]) == 0
    assert sheet.stat().st_size


# -- damaged files: report and train --resume ----------------------------------------------------------
def _snapshot(folder: Path) -> dict:
    return {str(path.relative_to(folder)): (info.st_ino, info.st_mtime_ns, info.st_size)
            for path in sorted(Path(folder).rglob("*")) for info in [path.lstat()]}


def _cells(change):
    """A CSV edit: ``change(rows)`` edits the rows (the header first) as lists of fields."""
    def edit(path):
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        change(rows)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        path.write_text(buffer.getvalue())
    return edit


def _cell(column, value, row=1):
    def change(rows):
        rows[row][rows[0].index(column)] = value
    return _cells(change)


def _drop(column):
    def change(rows):
        index = rows[0].index(column)
        for row in rows:
            del row[index]
    return _cells(change)


def _text(content):
    return lambda path: path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _json(*keys, value):
    def edit(path):
        recorded = json.loads(path.read_text())
        target = recorded
        for key in keys[:-1]:
            target = target[key]
        if value is None:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
        path.write_text(json.dumps(recorded))
    return edit


def _sparse(size):
    def edit(path):
        with open(path, "wb") as handle:
            handle.truncate(size)
    return edit


def _outside(path):
    """``path`` (a picture, evaluation.json) replaced by a link to a copy outside the folder."""
    target = path.parent.parent / f"outside-{path.name}"
    shutil.copy(path, target)
    path.unlink()
    path.symlink_to(target)


HISTORY_ROW = "1,0.5,0.8,0.6,0.7,1.0\n"
HEADER = ",".join(artifacts.HISTORY_COLUMNS) + "\n"
RUN_CASES = [  # (file, damage, words): the run folder of small_results (3 epochs, evaluated)
    ("history.csv", _text("epoch,loss\n1,0.5\n"), "(no column accuracy, val_loss, val_accuracy, epoch_seconds)"),
    ("history.csv", _cell("loss", "abc"), "damaged table (line 2: loss 'abc' is not a number)"),
    ("history.csv", _cell("val_accuracy", ""), "line 2: val_accuracy '' is not a number"),
    ("history.csv", _cell("epoch", "x"), "line 2: epoch 'x' is not a number"),
    ("history.csv", _cell("loss", "0.5\x00"), "is not a number"),
    ("history.csv", _cell("loss", "1" * 200_000), "damaged table (line 2: field larger than field limit"),
    ("history.csv", _text(HEADER + HISTORY_ROW * 5), "damaged history (row 2 is epoch 1.0; the epochs must be 1, 2"),
    ("history.csv", _text(HEADER + HISTORY_ROW.replace("1,", "2,", 1)), "row 1 is epoch 2.0"),
    ("history.csv", _text(HEADER + HISTORY_ROW.replace("\n", ",9\n")), "line 2: not as many fields as the header"),
    ("history.csv", _text(HEADER + "1,0.5\n"), "line 2: not as many fields as the header names"),
    ("history.csv", _text(b"\xff\xfe" + HEADER.encode()), "damaged table (no column epoch"),
    ("history.csv", _text(""), "damaged table (no column epoch"),
    ("history.csv", _sparse(300 * 2**20), "table cannot be read (314,572,800 bytes; larger than the limit"),
    ("metrics.json", _json("test_accuracy", value="0.9"), "damaged metrics file (test_accuracy '0.9' is not a number)"),
    ("metrics.json", _json("test_loss", value=[1]), "damaged metrics file (test_loss '[1]' is not a number)"),
    ("metrics.json", _json("diverged", value="no"), "damaged metrics file (diverged must be true or false"),
    ("metrics.json", _json("split_sizes", value=[]), "damaged metrics file"),
    ("metrics.json", _json("split_sizes", "test", value="60"), "damaged metrics file"),
    ("metrics.json", _json("split_sizes", "test", value=None), "damaged metrics file"),
    ("metrics.json", _text("[]"), "damaged metrics file (not a JSON object)"),
    ("evaluation.json", _json("per_class", value=5), "damaged evaluation file"),
    ("evaluation.json", _json("per_class", value=[{"class": "x"}]), "damaged evaluation file"),
    ("evaluation.json", _json("per_class", 0, "support", value="10"), "damaged evaluation file"),
    ("evaluation.json", _json("per_class", 0, "precision", value="high"), "damaged evaluation file (precision 'high'"),
    ("evaluation.json", _json("test_loss", value="x"), "damaged evaluation file (test_loss 'x' is not a number)"),
    ("evaluation.json", _json("test_accuracy", value=None), "damaged evaluation file"),
    ("evaluation.json", _json("mistakes_shown", value="3"), "damaged evaluation file"),
    ("evaluation.json", _text("{"), "damaged evaluation file (not JSON"),
    ("config.json", _json("environment", value=[]), "damaged environment (not a JSON object)"),
    ("config.json", _json("run_id", value=5), "damaged run_id (not a JSON string)"),
    ("config.json", _json("data", "digests", value=5), "damaged data record"),
    ("config.json", _json("data", value=None), "damaged run configuration (no data record)"),
    ("config.json", _json("settings", "verify", value="yes"), "damaged settings (verify yes: must be true or false)"),
    ("config.json", _json("settings", "data_dir", value=5), "damaged settings (data_dir 5: must be text or null)"),
    ("config.json", _json("settings", "epochs", value="3" * 5000), "damaged settings (epochs 333"),
    ("config.json", _json("study_member", value=5), "damaged study_member (not a JSON object)"),
    # found by tests/fuzz_inputs.py --surface reports: a setting gone, a name that is a list, a 400-digit number
    ("config.json", _json("settings", "normalization", value=None), "damaged settings (no normalization)"),
    ("config.json", _json("settings", "name", value=["x"]), "config.json: damaged settings ("),
    ("config.json", _json("settings", "learning_rate", value=10**400), "damaged settings (learning_rate 1000"),
    ("metrics.json", _json("test_accuracy", value=10**400), "damaged metrics file (test_accuracy '1000"),
    ("evaluation.json", _json("test_loss", value=10**400), "damaged evaluation file (test_loss '1000"),
    ("evaluation.json", _json("per_class", 0, "support", value=10**400), "damaged evaluation file"),
    ("evaluation.json", _json("per_class", 0, "class", value=10**400), "damaged evaluation file"),
    ("learning_curves.png", _outside, "learning_curves.png leads outside"),
    ("confusion_matrix.png", _outside, "confusion_matrix.png leads outside"),
    ("evaluation.json", _outside, "evaluation.json leads outside"),
    ("learning_curves.png", _sparse(100 * 2**20), "learning_curves.png: 104,857,600 bytes; over the limit of"),
]


def _member_link(table: Path):
    """The first member's folder (in members.csv) replaced by a link to a folder outside the study."""
    folder = table.parent
    with open(table, newline="") as handle:
        member = folder / next(csv.DictReader(handle))["run_dir"]
    target = folder.parent / "elsewhere"
    shutil.move(member, target)
    member.symlink_to(target, target_is_directory=True)


STUDY_CASES = [  # (kind, file, damage, words): the comparison and the sweep of small_results
    ("compare", "members.csv", _cell("run_dir", "../../elsewhere"), "run_dir '../../elsewhere' is not the name of a"),
    ("compare", "members.csv", _cell("run_dir", "/etc"), "run_dir '/etc' is not the name of a member's folder"),
    ("compare", "members.csv", _cell("run_dir", ".."), "run_dir '..' is not the name of a member's folder"),
    ("compare", "members.csv", _cell("status", "<script>"), "line 2: status '<script>' is not one of 'ok',"),
    ("compare", "members.csv", _cell("learning_rate", "fast"), "line 2: learning_rate 'fast' is not a number"),
    ("compare", "members.csv", _cell("seconds", ""), "line 2: seconds '' is not a number"),
    ("compare", "members.csv", _drop("seconds"), "damaged table (no column seconds)"),
    ("compare", "members.csv", _member_link, "leads outside"),
    ("compare", "summary.csv", _cell("run_dir", "../elsewhere"), "run_dir '../elsewhere' is not the name of a"),
    ("compare", "summary.csv", _cell("edge", "<b>"), "line 2: edge '<b>' is not one of '', 'lowest', 'highest'"),
    ("compare", "summary.csv", _cell("test_accuracy_mean", "abc"), "line 2: test_accuracy_mean 'abc' is not a number"),
    ("compare", "summary.csv", _cell("p_value", "small"), "line 2: p_value 'small' is not a number"),
    ("compare", "summary.csv", _drop("verdict"), "damaged table (no column verdict)"),
    ("compare", "val_accuracy.png", _outside, "val_accuracy.png leads outside"),
    ("sweep", "best.csv", _cell("run_dir", "../../elsewhere"), "run_dir '../../elsewhere' is not the name of a"),
    ("sweep", "best.csv", _cell("failed", "some"), "line 2: failed 'some' is not a number"),
    ("sweep", "summary.csv", _cell("members", "many"), "line 2: members 'many' is not a number"),
    ("sweep", "summary.csv", _text("method\n" + "x\n" * 5), "damaged table (no column optimizer"),
    ("sweep", "heatmap-sgd.png", _outside, "heatmap-sgd.png leads outside"),
]


def test_report_refuses_damaged_files_in_one_line_and_keeps_its_page(small_results, tmp_path, capsys):
    cases = [("run", *case) for case in RUN_CASES] + STUDY_CASES
    copies = {}
    for kind in ("run", "compare", "sweep"):
        copies[kind] = tmp_path / kind / "folder"  # room beside it for what a case puts outside
        shutil.copytree(getattr(small_results, kind), copies[kind])
    for case in cases:
        kind, name, damage, words = case
        folder = copies[kind]
        shutil.copytree(folder, tmp_path / "before", symlinks=True)
        damage(folder / name)
        before = _snapshot(folder)
        code = main(["report", str(folder)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"fmnist: error: {folder}"), (case, err)
        assert words in err and "Traceback" not in err, (case, err)
        assert _snapshot(folder) == before, case
        shutil.rmtree(folder)
        for stray in folder.parent.iterdir():
            shutil.rmtree(stray) if stray.is_dir() and not stray.is_symlink() else stray.unlink()
        (tmp_path / "before").rename(folder)
    # a table's row limit: a study's history.csv holds members x epochs rows
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits, "MAX_TABLE_ROWS", 2)
        assert main(["report", str(copies["run"])]) == 2
        assert "history.csv: more than 2 rows; over the limit for a table" in capsys.readouterr().err
    # handled, not refused: a history of no epoch yet, a method that learned at no rate
    _text(HEADER)(copies["run"] / "history.csv")
    (copies["run"] / "metrics.json").unlink()
    assert main(["report", str(copies["run"])]) == 0
    assert "<strong>Not finished</strong>: 0 of 3" in (copies["run"] / "report.html").read_text()


def test_train_resume_refuses_damaged_run_files_and_rewrites_a_damaged_history(setup, tmp_path, capsys):
    root, _ = setup
    run = tmp_path / "A"
    shutil.copytree(root / "A", run)
    config = run / "config.json"
    original = config.read_bytes()
    cases = [
        (_json("environment", value=[]), "damaged environment (not a JSON object)"),
        (_json("run_id", value=5), "damaged run_id (not a JSON string)"),
        (_json("data", "digests", value=5), "damaged data record"),
        (_json("data", "digests", value={"train-images-idx3-ubyte.gz": None}), "damaged data record"),
        (_json("data", value=None), "damaged run configuration (no data record)"),
        (_json("settings", "verify", value="yes"), "damaged settings (verify yes"),
        (_json("settings", "data_dir", value=[]), "damaged settings (data_dir []"),
        (_json("settings", "epochs", value="1"), "damaged settings (epochs 1: must be an integer >= 1)"),
        (_json("settings", "name", value="../x"), "damaged settings (name '../x'"),
        (_json("study_member", value="yes"), "damaged study_member (not a JSON object)"),
        (_json("settings", value=[]), "damaged run configuration (no settings)"),
    ]
    for case in cases:
        damage, words = case
        damage(config)
        before = _snapshot(run)
        code = main(["train", "--resume", str(run), "--epochs", "2", "--quiet"])
        _one_line(capsys, code, 2, f"{config}: {words}")
        assert _snapshot(run) == before, case
        config.write_bytes(original)
    # history.csv is written again from the checkpoint: a damaged one is repaired, not trusted
    _cell("loss", "abc")(run / "history.csv")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert [row["epoch"] for row in artifacts.read_history(run / "history.csv")] == [1, 2]


def _checkpoint_meta(run: Path, change) -> None:
    with np.load(run / "checkpoint.npz") as stored:
        arrays = {key: stored[key] for key in stored.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    with open(run / "checkpoint.npz", "wb") as handle:
        np.savez(handle, **arrays)


CHECKPOINT_HISTORIES = [  # what checkpoint.load must refuse (artifacts.check_history)
    (lambda meta: meta.update(history=meta["history"] * 5), "damaged history (5 rows for 1 epoch)"),
    (lambda meta: meta.update(history=[]), "damaged history (0 rows for 1 epoch)"),
    (lambda meta: meta.update(history="1"), "damaged history (not a list of rows)"),
    (lambda meta: meta["history"][0].update(epoch=3), "damaged history (row 1 is epoch 3"),
    (lambda meta: meta["history"][0].update(loss="low"), "damaged history (epoch 1: loss 'low' is not a number)"),
    (lambda meta: meta["history"][0].pop("val_loss"), "damaged history (epoch 1: not a row of epoch, loss"),
    (lambda meta: meta["history"].__setitem__(0, 5), "damaged history (epoch 1: not a row"),
]


def test_checkpoint_histories_are_checked(setup):
    """artifacts.check_history, the rule a checkpoint's history must follow: epochs 1..N, numbers."""
    root, _ = setup
    with np.load(root / "A" / "checkpoint.npz") as stored:
        meta = json.loads(str(stored["meta"]))
    assert artifacts.check_history(meta["history"], root, meta["epoch"])[0]["epoch"] == 1
    for change, words in CHECKPOINT_HISTORIES:
        damaged = json.loads(json.dumps(meta))
        change(damaged)
        with pytest.raises(DataError, match=re.escape(f"{root}: {words}")):
            artifacts.check_history(damaged["history"], root, damaged["epoch"])


def test_train_resume_refuses_a_checkpoint_whose_history_is_not_epochs_1_to_n(setup, tmp_path, capsys):
    root, _ = setup
    run = tmp_path / "A"
    shutil.copytree(root / "A", run)
    for change, words in CHECKPOINT_HISTORIES:
        shutil.copy(root / "A" / "checkpoint.npz", run)
        _checkpoint_meta(run, change)
        before = _snapshot(run)
        code = main(["train", "--resume", str(run), "--epochs", "2", "--quiet"])
        _one_line(capsys, code, 2, f"{run / 'checkpoint.npz'}: {words}")
        assert _snapshot(run) == before
