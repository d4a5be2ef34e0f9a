"""The README's code, run as written: in a copy of the repository's files (a fresh clone, with this
checkout's .venv), each command in a new process with a clean environment (``env -i HOME=<new empty
folder> PATH=/usr/bin:/bin``), in README order.

Blocks: ```python blocks run with .venv/bin/python; ```sh blocks run with bash; untagged blocks whose
lines start with ``$ `` are transcripts, their commands run with .venv/bin on PATH (the README says to
activate it); other untagged blocks are the output of the block before, and the classes they show are
checked. A ``fmnist serve`` block keeps running while the next block (the client) runs, then gets
SIGINT. Blocks that cannot run here are listed in SKIPPED with the reason, and a test fails if a block
is neither run nor listed.
"""

import dataclasses
import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import keras
import pytest

from conftest import tiny_images
from fmnist import CLASS_NAMES, normalization
from fmnist.model import build_model

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results.md"  # its blocks are hours of training: each must be listed in SKIPPED
SKIPPED = {  # a block's first command: why the test does not run it
    "make run": "installs, fetches the data and trains (the commands it runs are run below); "
                "make test would run this suite inside itself; CI runs make test",
    "$ fmnist compare --methods none,rescale,standard,per-pixel --seeds 3 --epochs 10 --output-dir runs/compare-readme":
        "12 ten-epoch runs, about 2.5 minutes on 2 cores; tests/test_compare.py runs compare on tiny data",
    "$ fmnist sweep --output-dir runs/sweep":
        "990 members, an hour on 2 cores; tests/test_sweep.py and tests/test_sweep_processes.py run sweeps on tiny data",
    "fmnist sweep --methods none,rescale,standard --learning-rates 0.1,0.01,0.001 --optimizers sgd --seeds 2 --epochs 2":
        "the same command runs on the real data in tests/test_integration.py (test_the_sweep_of_the_issue_on_the_real_data)",
    "fmnist sweep --output-dir /shared/runs/study --coordinator-address hostA:12355 --num-processes 2 --process-id 0":
        "needs two hosts and a shared folder; tests/test_sweep_processes.py joins two local processes the same way",
    ".venv/bin/tensorboard --logdir runs":
        "a server that runs until Ctrl-C; tests/test_tensorboard.py starts TensorBoard on 127.0.0.1, reads "
        "its scalars and HParams over HTTP and stops it",
    ".venv/bin/python -m pytest -m \"not integration and not processes\"":
        "the test suite itself and the benchmarks (minutes); CI runs make test",
}
HOMES = tempfile.TemporaryDirectory(prefix="fmnist-homes-")  # fresh HOME folders, removed at exit


@dataclasses.dataclass
class Block:
    language: str  # "python", "sh", "" (untagged)
    text: str
    line: int

    @property
    def commands(self) -> list[str]:
        if self.language == "":
            return [line[2:] for line in self.text.splitlines() if line.startswith("$ ")]
        return [line for line in self.text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    @property
    def kind(self) -> str:
        if self.language in ("python", "sh"):
            return self.language
        return "transcript" if self.commands else "output"

    @property
    def key(self) -> str:
        first = self.commands[0] if self.commands else ""
        return ("$ " if self.kind == "transcript" else "") + first.split("  #")[0].strip()


def readme_blocks(document: Path = README) -> list[Block]:
    blocks, fence, start, body = [], None, 0, []
    for number, line in enumerate(document.read_text().splitlines(), 1):
        if fence is None and line.startswith("```"):
            fence, start, body = line[3:].strip(), number, []
        elif fence is not None and line.startswith("```"):
            blocks.append(Block(fence, "\n".join(body), start))
            fence = None
        elif fence is not None:
            body.append(line)
    return blocks


def test_every_block_is_run_or_skipped_with_a_reason():
    blocks = readme_blocks()
    kinds = {block.kind for block in blocks}
    assert kinds <= {"python", "sh", "transcript", "output"}
    keys = [block.key for block in blocks if block.kind != "output"]
    results = [block.key for block in readme_blocks(RESULTS) if block.kind != "output"]
    assert results and [key for key in results if key not in SKIPPED] == []
    assert [key for key in SKIPPED if key not in keys + results] == []  # no stale entry
    assert sum(block.kind == "python" for block in blocks) >= 1
    for block in blocks:
        if block.kind in ("python", "sh"):
            assert block.language in ("python", "sh"), block.line


def workspace() -> Path:
    """The repository's files as a fresh clone has them (tracked, or new and not ignored), with .venv."""
    folder = Path(tempfile.mkdtemp(prefix="clone-", dir=HOMES.name))
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    (folder / ".venv").symlink_to(ROOT / ".venv")
    return folder


def clean_env(folder: Path, activated: bool = False) -> dict:
    path = "/usr/bin:/bin"
    return {"HOME": tempfile.mkdtemp(prefix="home-", dir=HOMES.name),
            "PATH": f"{folder / '.venv' / 'bin'}:{path}" if activated else path}


def run_block(block: Block, folder: Path, timeout: float = 600) -> str:
    if block.kind == "python":
        script = folder / f"readme_{block.line}.py"
        script.write_text(block.text + "\n")
        argv, env = [str(folder / ".venv" / "bin" / "python"), script.name], clean_env(folder)
    else:
        text = block.text if block.kind == "sh" else "\n".join(block.commands)
        argv, env = ["bash", "-e", "-c", text], clean_env(folder, activated=block.kind == "transcript")
    result = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"README line {block.line}", result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout + result.stderr


def check_output(shown: Block, printed: str) -> None:
    """The classes the README shows are the ones printed (rows of predict tables and JSON answers)."""
    for line in shown.text.splitlines():
        if line.startswith("docs/examples/"):
            name, predicted = line.split()[:2]
            assert re.search(rf"^{re.escape(name)}\s+{re.escape(predicted)}", printed, re.M), (line, printed)
        elif line.startswith("[{"):
            assert json.loads(printed.strip().splitlines()[-1])[0]["class_name"] == json.loads(line)[0]["class_name"]
        elif line.startswith("verified with"):
            assert "same class for 10,000 of 10,000" in line and "same class for 10,000 of 10,000" in printed


def test_python_snippet_in_a_clean_environment():
    """Without the real data: the snippet as written, on a small untrained model in runs/tutorial."""
    folder = workspace()
    keras.utils.set_random_seed(0)
    model = build_model("standard", normalization.get("standard").fit(tiny_images(100, seed=1)[0]))
    (folder / "runs" / "tutorial").mkdir(parents=True)
    model.save(folder / "runs" / "tutorial" / "model.keras")
    for block in readme_blocks():
        if block.kind == "python":
            printed = run_block(block, folder)
            assert printed.strip().splitlines()[-1] in CLASS_NAMES
    shutil.rmtree(folder)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.mark.integration
def test_readme_as_written(real_dir):
    """Every block that can run, in order, on the real data: about a minute."""
    if not str(real_dir).startswith("/usr/share/datasets"):
        pytest.skip(f"a clean environment finds only Debian's dataset, not {real_dir}")
    folder, blocks, server, ran = workspace(), readme_blocks(), None, []
    try:
        for index, block in enumerate(blocks):
            if block.kind == "output" or block.key in SKIPPED:
                continue
            ran.append(block.key)
            if block.kind == "sh" and "fmnist serve" in block.text:
                if not _port_free(8000):
                    pytest.skip("port 8000 is taken on this machine: the serve example cannot run as written")
                server = subprocess.Popen(["bash", "-c", "exec " + block.commands[0].split("  #")[0]], cwd=folder,
                                          env=clean_env(folder), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                started = server.stdout.readline()
                assert "serving runs/tutorial/model.onnx at http://127.0.0.1:8000/" in started, started
                check_next_output(blocks, index, started)
                continue
            printed = run_block(block, folder)
            check_next_output(blocks, index, printed)
            if server is not None:  # the client block after `fmnist serve` has run
                server.send_signal(signal.SIGINT)
                rest, _ = server.communicate(timeout=60)
                assert server.returncode == 0 and "stopped serving (SIGINT)" in rest
                server = None
    finally:
        if server is not None:
            server.kill()
    shutil.rmtree(folder)
    runnable = [block.key for block in blocks if block.kind != "output" and block.key not in SKIPPED]
    assert ran == runnable and any("fmnist serve" in key for key in ran) and any("curl" in key for key in ran)


def check_next_output(blocks: list[Block], index: int, printed: str) -> None:
    if index + 1 < len(blocks) and blocks[index + 1].kind == "output":
        check_output(blocks[index + 1], printed)
    if blocks[index].kind == "transcript":
        check_output(blocks[index], printed)


def test_the_readme_shows_exactly_two_set_up_commands():
    first = next(block for block in readme_blocks() if block.kind == "sh")
    assert [command.split("#")[0].strip() for command in first.commands] == ["make run", "make test"]
