"""The documentation's code, run as written: README.md and every docs/*.md, each document in its own copy
of the repository's files (a fresh clone, with this checkout's .venv), each command in a new process with
a clean environment (``env -i HOME=<new empty folder> PATH=/usr/bin:/bin``), in the document's order.

Blocks: ```python blocks run with .venv/bin/python; ```sh blocks run with bash; untagged blocks whose
lines start with ``$ `` are transcripts, their commands run with .venv/bin on PATH (the README says to
activate it); other untagged blocks are the output of the block before, and the classes they show are
checked. A ``fmnist serve`` block keeps running while the next block (the client) runs, then gets
SIGINT. Benchmarks (a block that starts with ``make bench`` or ``python benchmarks/``) are not run: they
take minutes on the real data, and docs/benchmarks.md records what they measured. Other blocks that
cannot run here are listed in SKIPPED with the reason, and a test fails if a block is neither run nor
listed.

The tutorial's model (``fmnist train --output-dir runs/tutorial --quiet``) is what several documents
start from. It is trained once per session, where a document first runs that command, and the folder it
wrote is copied into every later document that runs the same command: the same seed, data and machine
give the same bits (docs/reproducibility.md says what is promised), so the copy is what the command would
write again, without training it once per document.

Also checked: every relative link (files and #anchors) resolves, and the README stays a front door.
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

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
RESULTS = ROOT / "docs" / "results.md"  # its blocks are hours of training: each must be listed in SKIPPED
README_LIMIT = 20_000  # bytes: the README is the front door; the depth goes into docs/
BENCHMARKS = ("make bench", "python benchmarks/")  # a block that starts so is a benchmark: minutes on the real
# data, recorded in docs/benchmarks.md, and never run by the tests (make bench runs them)
SKIPPED = {  # a block's first command: why the test does not run it
    "make run": "installs, fetches the data and trains (the commands it runs are run below); "
                "make test would run this suite inside itself; CI runs make test",
    "$ fmnist compare --methods none,rescale,standard,per-pixel --seeds 3 --epochs 10 --output-dir runs/compare-readme":
        "12 ten-epoch runs, about 2.5 minutes on 2 cores; tests/training/test_compare.py runs compare on tiny data",
    "$ fmnist sweep --output-dir runs/sweep":
        "990 members, an hour on 2 cores; tests/training/test_sweep.py and tests/training/test_sweep_processes.py run sweeps on tiny data",
    "$ fmnist sweep --models mlp-bn,mlp --output-dir runs/sweep-bn":
        "1,980 members, 2.5 hours on 2 cores; tests/training/test_model_axis.py runs sweeps over networks on tiny data",
    "fmnist sweep --methods none,rescale,standard --learning-rates 0.1,0.01,0.001 --optimizers sgd --seeds 2 --epochs 2":
        "the same command runs on the real data in tests/training/test_integration.py (test_the_sweep_of_the_issue_on_the_real_data)",
    "fmnist sweep --output-dir /shared/runs/study --coordinator-address hostA:12355 --num-processes 2 --process-id 0":
        "needs two hosts and a shared folder; tests/training/test_sweep_processes.py joins two local processes the same way",
    ".venv/bin/tensorboard --logdir runs":
        "a server that runs until Ctrl-C; tests/reporting/test_tensorboard.py starts TensorBoard on 127.0.0.1, reads "
        "its scalars and HParams over HTTP and stops it",
    ".venv/bin/python -m pytest -m \"not integration and not processes\"":
        "the test suite itself and the benchmarks (minutes); CI runs make test",
    ".venv/bin/python tests/fuzz_inputs.py --seconds 900 --seed 1 --keras-load":
        "15 minutes of fuzzing; tests/guard/test_fuzz.py runs the same fuzzer for 800 inputs",
}
TUTORIAL = "fmnist train --output-dir runs/tutorial --quiet"  # the model most examples use
REUSED = {TUTORIAL: "runs/tutorial"}  # a command trained once per session: the folder it writes
HOMES = tempfile.TemporaryDirectory(prefix="fmnist-homes-")  # fresh HOME folders, removed at exit
_reused: dict[str, tuple[Path, str]] = {}  # command -> (a copy of the folder it wrote, what it printed)


@dataclasses.dataclass
class Block:
    document: Path
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

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)} line {self.line}"

    @property
    def benchmark(self) -> bool:
        return self.kind != "output" and bare(self.commands[0]).startswith(BENCHMARKS)

    @property
    def runs(self) -> bool:
        return self.kind != "output" and self.key not in SKIPPED and not self.benchmark


def blocks_of(document: Path) -> list[Block]:
    blocks, fence, start, body = [], None, 0, []
    for number, line in enumerate(document.read_text().splitlines(), 1):
        if fence is None and line.startswith("```"):
            fence, start, body = line[3:].strip(), number, []
        elif fence is not None and line.startswith("```"):
            blocks.append(Block(document, fence, "\n".join(body), start))
            fence = None
        elif fence is not None:
            body.append(line)
    return blocks


def bare(command: str) -> str:
    """A command without its comment and without the .venv/bin/ a sh block spells out."""
    return command.split("  #")[0].strip().removeprefix(".venv/bin/")


def test_every_block_is_run_or_skipped_with_a_reason():
    keys = []
    for document in DOCUMENTS:
        for block in blocks_of(document):
            assert block.language in ("python", "sh", ""), f"{block.where}: tag it python or sh, or leave it untagged"
            if block.kind != "output":
                keys.append(block.key)
    results = [block.key for block in blocks_of(RESULTS) if block.kind != "output"]
    assert results and [key for key in results if key not in SKIPPED] == []
    assert [key for key in SKIPPED if key not in keys] == []  # no stale entry
    assert any(block.kind == "python" for block in blocks_of(README))
    commands = [bare(command) for document in DOCUMENTS for block in blocks_of(document) for command in block.commands]
    assert [command for command in REUSED if command not in commands] == []


def test_each_document_trains_the_model_it_uses():
    """A document that uses runs/tutorial trains it first, so it can be followed on its own."""
    for document in DOCUMENTS:
        trained = False
        for block in filter(lambda block: block.runs, blocks_of(document)):
            trained = trained or (block.kind != "python" and bare(block.commands[0]) == TUTORIAL)
            assert trained or "runs/tutorial" not in block.text, f"{block.where} uses runs/tutorial before training it"


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


def run(argv: list[str], folder: Path, env: dict, where: str, timeout: float = 600) -> str:
    result = subprocess.run(argv, check=False, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (where, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout + result.stderr


def run_block(block: Block, folder: Path) -> str:
    if block.kind == "python":
        script = folder / f"block_{block.line}.py"
        script.write_text(block.text + "\n")
        return run([str(folder / ".venv" / "bin" / "python"), script.name], folder, clean_env(folder), block.where)
    activated, commands, printed = block.kind == "transcript", block.commands, ""
    if bare(commands[0]) in REUSED:
        printed, commands = reuse(commands[0], folder, activated, block.where), commands[1:]
    if commands:
        printed += run(["bash", "-e", "-c", "\n".join(commands)], folder, clean_env(folder, activated), block.where)
    return printed


def reuse(command: str, folder: Path, activated: bool, where: str) -> str:
    """Run ``command`` the first time; afterwards copy the folder that first run wrote."""
    name, written = bare(command), REUSED[bare(command)]
    if name not in _reused:
        printed = run(["bash", "-e", "-c", command], folder, clean_env(folder, activated), where)
        kept = Path(tempfile.mkdtemp(prefix="reused-", dir=HOMES.name)) / "folder"
        shutil.copytree(folder / written, kept, symlinks=True)
        _reused[name] = kept, printed
    kept, printed = _reused[name]
    if not (folder / written).exists():  # the first run wrote it here already
        shutil.copytree(kept, folder / written, symlinks=True)
    return printed


def check_output(shown: Block, printed: str) -> None:
    """The classes a document shows are the ones printed (rows of predict tables and JSON answers)."""
    for line in shown.text.splitlines():
        if line.startswith("docs/examples/"):
            name, predicted = line.split()[:2]
            assert re.search(rf"^{re.escape(name)}\s+{re.escape(predicted)}", printed, re.MULTILINE), (line, printed)
        elif line.startswith("[{"):
            assert json.loads(printed.strip().splitlines()[-1])[0]["class_name"] == json.loads(line)[0]["class_name"]
        elif line.startswith("verified with"):
            assert "same class for 10,000 of 10,000" in line and "same class for 10,000 of 10,000" in printed
        elif line.startswith("fmnist: serving"):
            assert line in printed, (line, printed)


def check_next_output(blocks: list[Block], index: int, printed: str) -> None:
    if index + 1 < len(blocks) and blocks[index + 1].kind == "output":
        check_output(blocks[index + 1], printed)
    if blocks[index].kind == "transcript":
        check_output(blocks[index], printed)


def test_python_snippets_in_a_clean_environment():
    """Without the real data: every document's Python as written, on a small untrained model in runs/tutorial."""
    folder = workspace()
    keras.utils.set_random_seed(0)
    model = build_model("standard", normalization.get("standard").fit(tiny_images(100, seed=1)[0]))
    (folder / "runs" / "tutorial").mkdir(parents=True)
    model.save(folder / "runs" / "tutorial" / "model.keras")
    snippets = {block.text: block for document in DOCUMENTS for block in blocks_of(document) if block.kind == "python"}
    assert snippets
    for block in snippets.values():  # a snippet shown twice (README and docs) runs once
        printed = run_block(block, folder)
        assert printed.strip().splitlines()[-1] in CLASS_NAMES, (block.where, printed)
    shutil.rmtree(folder)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_server(block: Block, folder: Path) -> tuple[subprocess.Popen, str]:
    if not _port_free(8000):
        pytest.skip("port 8000 is taken on this machine: the serve example cannot run as written")
    server = subprocess.Popen(["bash", "-c", "exec " + block.commands[0].split("  #")[0]], cwd=folder,
                              env=clean_env(folder), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = ""
    for line in server.stdout:  # warnings may come first on a backend's start
        started += line
        if "fmnist: serving" in line:
            break
    assert "at http://127.0.0.1:8000/ (Ctrl-C stops)" in started, (block.where, started)
    return server, started


@pytest.mark.integration
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda document: str(document.relative_to(ROOT)))
def test_documents_as_written(document, real_dir):
    """Every block of the document that can run, in order, on the real data: about a minute for the README."""
    if not str(real_dir).startswith("/usr/share/datasets"):
        pytest.skip(f"a clean environment finds only Debian's dataset, not {real_dir}")
    blocks = blocks_of(document)
    if not any(block.runs for block in blocks):
        return
    folder, server, ran = workspace(), None, []
    try:
        for index, block in enumerate(blocks):
            if not block.runs:
                continue
            ran.append(block.key)
            if block.kind == "sh" and "fmnist serve" in block.text:
                server, started = start_server(block, folder)
                check_next_output(blocks, index, started)
                continue
            printed = run_block(block, folder)
            check_next_output(blocks, index, printed)
            if server is not None:  # the client block after `fmnist serve` has run
                server.send_signal(signal.SIGINT)
                rest, _ = server.communicate(timeout=60)
                assert server.returncode == 130 and "stopped by SIGINT while serving" in rest, (block.where, rest)
                server = None
    finally:
        if server is not None:
            server.kill()
            server.communicate()
    shutil.rmtree(folder)
    if document == README:  # the service and its client
        assert any("fmnist serve" in key for key in ran) and any("curl" in key for key in ran)


def test_the_readme_shows_exactly_two_set_up_commands():
    first = next(block for block in blocks_of(README) if block.kind == "sh")
    assert [command.split("#")[0].strip() for command in first.commands] == ["make run", "make test"]


def test_the_readme_is_a_front_door():
    """Short, and its Documentation list links every page of docs/."""
    size = README.stat().st_size
    assert size < README_LIMIT, f"README.md is {size:,} bytes: move the depth into docs/ (limit {README_LIMIT:,})"
    listed = without_code_blocks(README).split("## Documentation", 1)[1]
    assert [page.name for page in DOCUMENTS[1:] if f"](docs/{page.name})" not in listed] == []


LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def without_code_blocks(document: Path) -> str:
    return re.sub(r"^```.*?^```", "", document.read_text(), flags=re.MULTILINE | re.DOTALL)


def anchors(document: Path) -> set[str]:
    """The #anchors GitHub makes from the document's headings (a repeated one gets -1, -2, …)."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#+ (.+)$", without_code_blocks(document), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def test_every_relative_link_resolves():
    broken = []
    for document in DOCUMENTS:
        prose = re.sub(r"`[^`\n]*`", "", without_code_blocks(document))  # inline code holds no links
        for target in LINK.findall(prose):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if ROOT not in linked.parents or not linked.exists():
                broken.append(f"{document.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
                broken.append(f"{document.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
