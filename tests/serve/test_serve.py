"""`fmnist serve` as people use it: the real server process on a free loopback port, real HTTP requests
(good, bad, hostile, slow, too many at once), a headless browser on its page, and signals at random
moments of its start-up and service."""

import asyncio
import concurrent.futures
import contextlib
import http.client
import json
import random
import signal
import socket
import struct
import threading
import time
import uuid
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tiny_images
from PIL import Image
from served import Server, read_line, start_serving

from fmnist import normalization
from fmnist.cli import main
from fmnist.errors import TooLarge, UnsupportedFormat
from fmnist.inputs import read
from fmnist.model import build_model
from fmnist.serve import ServeConfig
from fmnist.serve.app import Batcher

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
PICTURES = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".png", ".jpg"))
TIMEOUT = 2.0  # the served process's --timeout, short so that the slow-client tests are quick
STOPPED = "fmnist: error: stopped by {} {}\n"  # stderr, all of it


def multipart(name: str, payload: bytes, field: str = "file") -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small trained-looking model: the standard method fitted on generated images (weights at seed 0)."""
    keras.utils.set_random_seed(0)
    train = tiny_images(200, seed=3)[0]
    model = build_model("standard", normalization.get("standard").fit(train))
    path = tmp_path_factory.mktemp("serve") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def server(model_file):
    running = Server(model_file, "--timeout", str(TIMEOUT), "--max-body-mb", "1", "--max-pixels", "4000000")
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def _cli_json(model, paths, capsys) -> list[dict]:
    assert main(["predict", str(model), *map(str, paths), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def _same_answer(served: dict, expected: dict) -> None:
    assert served["label"] == expected["label"] and served["class_name"] == expected["class_name"]
    assert served["warning"] == expected["warning"] and served["error"] is None
    assert served["probability"] == pytest.approx(expected["probability"], abs=1e-6)
    assert [e["label"] for e in served["top3"]] == [e["label"] for e in expected["top3"]]


def test_health_and_page(server):
    status, answer, headers = server.call("/health")
    assert status == 200 and answer["status"] == "ok" and answer["model"] == "model.keras"
    assert answer["classes"][7] == "Sneaker"
    status, page, headers = server.call("/")
    assert status == 200 and 'id="file"' in page
    assert "script-src 'sha256-" in headers["content-security-policy"]  # only the page's own script runs
    # a path with a trailing slash is not redirected: a redirect would name whatever host the client claimed
    for path in ("/health/", "/predict/", "//health"):
        status, answer, headers = server.call(path, headers={"Host": "evil.example"})
        assert status == 404 and "location" not in {key.lower() for key in headers}, (path, status, headers)


def test_uploads_answer_what_predict_prints(server, model_file, capsys):
    expected = _cli_json(model_file, PICTURES, capsys)
    for path, cli in zip(PICTURES, expected):
        body, headers = multipart(path.name, path.read_bytes())
        status, answer, _ = server.call("/predict", body, headers)
        assert status == 200, answer
        assert set(answer[0]) == set(cli) and answer[0]["input"] == path.name
        _same_answer(answer[0], cli)
        status, raw, _ = server.call("/predict", path.read_bytes(), {"content-type": "image/png"})  # any type: sniffed
        assert status == 200 and raw[0]["input"] == "upload"
        _same_answer(raw[0], cli)


def test_options_and_the_image_the_model_saw(server, model_file, capsys):
    path = EXAMPLES / "boot-on-white.png"
    (cli,) = _cli_json(model_file, [path, "--conversion", "simple", "--invert", "yes"], capsys)
    status, answer, _ = server.call("/predict?conversion=simple&invert=yes&pixels=1", path.read_bytes())
    assert status == 200
    _same_answer(answer[0], cli)
    (item,) = read.read_inputs([str(path)], "yes", "simple")
    assert np.array_equal(np.array(answer[0]["pixels"], np.uint8), item.image)
    assert "pixels" not in server.call("/predict", path.read_bytes())[1][0]  # only on request


def test_json_pixels(server, model_file, tmp_path, capsys):
    arrays = tiny_images(5, seed=9)[0]
    np.save(tmp_path / "x.npy", arrays)
    expected = _cli_json(model_file, [tmp_path / "x.npy"], capsys)
    status, answer, _ = server.call("/predict?pixels=true", json.dumps(arrays.tolist()).encode(),
                                    {"content-type": "application/json"})
    assert status == 200 and [a["index"] for a in answer] == [0, 1, 2, 3, 4]
    for served, cli, array in zip(answer, expected, arrays):
        assert served["input"] == "json"
        _same_answer(served, cli)
        assert np.array_equal(np.array(served["pixels"], np.uint8), array)
    status, one, _ = server.call("/predict", json.dumps(arrays[0].tolist()).encode(), {"content-type": "application/json"})
    assert status == 200 and len(one) == 1 and one[0]["label"] == expected[0]["label"]


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny compressed row: a decompression bomb's shape."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _two_files(payload: bytes) -> bytes:
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n' + payload + b"\r\n"
    return part + part + b"--b--\r\n"


def _bad_requests(tmp_path) -> dict:
    png = (EXAMPLES / "sneaker.png").read_bytes()
    Image.new("RGB", (20, 20)).save(tmp_path / "x.gif")
    json_type = {"content-type": "application/json"}
    return {  # name: (path, body, headers, method, status, words in the error)
        "text": ("/predict", b"hello, I am not a picture", {}, None, 415, "not PNG or JPEG"),
        "json without its type": ("/predict", b"[[0, 1]]", {}, None, 415, "needs the header Content-Type: application/json"),
        "gif": ("/predict", (tmp_path / "x.gif").read_bytes(), {}, None, 415, "unsupported format (GIF)"),
        "truncated png": ("/predict", png[:300], {}, None, 422, "damaged PNG"),
        "bomb": ("/predict", _png_header(50_000, 50_000), {}, None, 413, "decompression bomb"),
        "too many pixels": ("/predict", _png_header(3000, 2000), {}, None, 413, "more than the limit of 4,000,000"),
        # the length alone is refused: no body is sent, so the answer cannot be lost to a reset connection
        # (a server that closes with a body unread makes the client's kernel drop what it had received)
        "declared too big": ("/predict", None, {"content-length": str(2 * 2**20)}, "POST", 413, "the limit is 1,048,576"),
        "empty": ("/predict", b"", {}, "POST", 400, "empty body"),
        "not json": ("/predict", b"[[1, 2", json_type, None, 400, "not valid JSON"),
        "deep json": ("/predict", b"[" * 100_000 + b"]" * 100_000, json_type, None, 400, "not valid JSON"),
        "ragged json": ("/predict", b"[[1, 2], [3]]", json_type, None, 422, "ragged"),
        "wrong shape": ("/predict", json.dumps([[0] * 27] * 28).encode(), json_type, None, 422, "shape (28, 27)"),
        "out of range": ("/predict", json.dumps([[300] * 28] * 28).encode(), json_type, None, 422, "0..255"),
        "strings": ("/predict", json.dumps([["a"] * 28] * 28).encode(), json_type, None, 422, "dtype"),
        "too many": ("/predict", json.dumps(np.zeros((257, 28, 28), int).tolist()).encode(), json_type, None, 413,
                     "the limit is 256"),
        "no file": ("/predict", b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--b--\r\n',
                    {"content-type": "multipart/form-data; boundary=b"}, None, 400, "without a file"),
        "two files": ("/predict", _two_files(png), {"content-type": "multipart/form-data; boundary=b"}, None, 400,
                      "more than one file"),
        "no boundary": ("/predict", png, {"content-type": "multipart/form-data"}, None, 400, "no boundary"),
        "unknown option": ("/predict?colour=red", png, {}, None, 400, "unknown query parameter 'colour'"),
        "bad option": ("/predict?invert=maybe", png, {}, None, 400, "invert='maybe'"),
        "get predict": ("/predict", None, {}, "GET", 405, "Method Not Allowed"),
        "no such page": ("/admin", None, {}, "GET", 404, "Not Found"),
    }


def test_bad_input_gets_a_json_4xx_and_the_service_goes_on(server, tmp_path):
    for name, (path, body, headers, method, status, words) in _bad_requests(tmp_path).items():
        got, answer, _ = server.call(path, body, headers, method)
        assert (got, words in answer.get("error", "")) == (status, True), (name, got, answer)
    status, answer, _ = server.call("/predict", (EXAMPLES / "sneaker.png").read_bytes())
    assert status == 200 and answer[0]["class_name"]


def test_oversized_bodies_are_refused_unread(server):
    """A declared length over the limit is answered at once, without waiting for the body; a chunked
    body without a length is cut off as soon as it passes the limit."""
    with socket.create_connection((server.host, int(server.port)), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n")
        start = time.monotonic()
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 413") and time.monotonic() - start < TIMEOUT
    with socket.create_connection((server.host, int(server.port)), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        try:
            for _ in range(40):  # 2.5 MB offered; the limit is 1 MB
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            pass  # the server closed the connection: refused
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")


def test_refused_bodies_are_answered_not_reset(server):
    """A body refused before it is read is drained after the answer (a lingering close): a client that
    sends all of it before reading (http.client, curl) reads the 413 every time, never a reset. No
    fallback here, unlike ``Server.call``: the server closing with the body unread would fail this."""
    body = bytes(2 * 2**20)  # twice the limit of 1 MB
    for attempt in range(20):
        connection = http.client.HTTPConnection(server.host, int(server.port), timeout=30)
        try:
            connection.request("POST", "/predict", body=body, headers={"content-type": "image/png"})
            response = connection.getresponse()
            assert (response.status, b"the limit is 1,048,576" in response.read()) == (413, True), attempt
        finally:
            connection.close()


def test_requests_the_http_parser_refuses_are_answered_not_reset_and_leave_no_traceback(model_file):
    """A request h11 refuses (a Content-Length that is no number, with its body sent anyway) gets its 400
    whole, the rest drained, never a reset; a bad chunk in a request already being answered (GET /,
    HEAD /health) ends that connection quietly: no traceback on the server's stderr."""
    running = Server(model_file, "--timeout", str(TIMEOUT))
    try:
        address = (running.host, int(running.port))
        for attempt in range(10):
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n" + bytes(600_000))
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
                assert reply.startswith(b"HTTP/1.1 400") and reply.endswith(b"Invalid HTTP request received."), attempt
        for request in (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n0\r\n\r\n",
                        b"HEAD /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n0\r\n\r\n"):
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(request)
                while sock.recv(65536):
                    pass
        assert running.call("/health", method="GET")[0] == 200
    finally:
        code, err = running.stop()
    assert code == 143 and "Traceback" not in err, err


def _wait_until_closed(port: int) -> None:
    """Until the server has closed every connection on ``port`` (the kernel's view, /proc/net/tcp)."""
    listening, closed = "0A", "06"  # TCP_LISTEN, TCP_TIME_WAIT: what is left once the server closed them
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        if all(row[3] in (listening, closed) for row in rows if int(row[1].split(":")[1], 16) == port):
            break
        time.sleep(0.05)
    time.sleep(0.1)  # and its event loop has let them go


def test_one_connection_over_the_limit_gets_503_with_retry_after(server):
    """``max_connections`` (200) open at once are served, idle ones included; a request on one more gets 503
    with Retry-After, and /health is answered whatever the count."""
    address = (server.host, int(server.port))
    _wait_until_closed(int(server.port))  # the connections of earlier tests, which count too
    idle = [socket.create_connection(address, timeout=10) for _ in range(199)]
    try:
        status, answer, _ = server.call("/predict", (EXAMPLES / "sneaker.png").read_bytes())  # the 200th
        assert status == 200, answer
        idle.append(socket.create_connection(address, timeout=10))
        status, answer, headers = server.call("/predict", (EXAMPLES / "sneaker.png").read_bytes())  # the 201st
        assert (status, answer["error"], headers.get("retry-after")) == (
            503, "busy: over 200 connections at once; retry in 1 s", "1")
        assert server.call("/health")[0] == 200
    finally:
        for sock in idle:
            sock.close()


def _read_until_closed(sock) -> bytes:
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    return reply


def test_slow_and_abandoned_clients_are_timed_out(server):
    silent = socket.create_connection((server.host, int(server.port)), timeout=10)
    slow = socket.create_connection((server.host, int(server.port)), timeout=10)
    slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n\x89PNG")
    start = time.monotonic()
    status, answer, _ = server.call("/predict", (EXAMPLES / "sneaker.png").read_bytes())  # others are served meanwhile
    assert status == 200 and time.monotonic() - start < TIMEOUT
    reply = _read_until_closed(slow)
    assert reply.startswith(b"HTTP/1.1 408") and b"not received within 2 s" in reply
    assert silent.recv(100) == b""  # no headers within the timeout: closed
    assert time.monotonic() - start < 4 * TIMEOUT
    silent.close()
    slow.close()


def test_concurrent_clients_all_get_their_own_answer(server, model_file, capsys):
    expected = {p.name: a["label"] for p, a in zip(PICTURES, _cli_json(model_file, PICTURES, capsys))}
    failures = []

    def client(index):
        for path in PICTURES[index % len(PICTURES):] + PICTURES[: index % len(PICTURES)]:
            status, answer, _ = server.call("/predict", *multipart(path.name, path.read_bytes()))
            if status != 200 or answer[0]["label"] != expected[path.name] or answer[0]["input"] != path.name:
                failures.append((path.name, status, answer))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


class SlowModel:
    """Records the batch size of each call and takes 50 ms over it, as a busy model would."""

    def __init__(self):
        self.calls = []

    def predict_on_batch(self, batch):
        self.calls.append(len(batch))
        time.sleep(0.05)
        probabilities = np.zeros((len(batch), 10), np.float32)
        probabilities[np.arange(len(batch)), batch[:, 0, 0] % 10] = 1  # the answer names the request
        return probabilities


def test_requests_waiting_together_share_a_model_call():
    model = SlowModel()
    batcher = Batcher(model, max_batch=16)

    async def run():
        task = batcher.start()
        requests = [np.full((1 + i % 3, 28, 28), i, np.uint8) for i in range(12)]
        answers = await asyncio.gather(*(batcher.probabilities(r) for r in requests))
        task.cancel()
        return requests, answers

    requests, answers = asyncio.run(run())
    for request, answer in zip(requests, answers):  # each gets its own rows back
        assert answer.shape == (len(request), 10) and set(answer.argmax(-1)) == {request[0, 0, 0] % 10}
    assert sum(model.calls) < 2 * sum(len(r) for r in requests)  # padding to 1, 2, 4, 8, 16 at most doubles
    assert len(model.calls) <= 4  # 24 images in 12 requests: a few calls, not 12


def test_uploaded_bytes_are_converted_exactly_as_files(tmp_path):
    for path in PICTURES:
        (from_file,) = read.read_inputs([str(path)])
        from_bytes = read.read_bytes(path.read_bytes(), path.name)
        assert np.array_equal(from_file.image, from_bytes.image) and from_file.warning == from_bytes.warning
    with pytest.raises(TooLarge):
        read.read_bytes(_png_header(5000, 5000), "big.png", max_pixels=1_000_000)
    with pytest.raises(UnsupportedFormat, match="BMP"):
        read.read_bytes(b"BM" + bytes(100), "x.bmp")


def test_onnx_model_serves_the_same_answers(server, model_file, tmp_path):
    from fmnist.inference.export import export_onnx

    onnx_file = export_onnx(model_file, tiny_images(50, seed=4)[0], tmp_path / "model.onnx").path
    served = Server(onnx_file)
    try:
        status, health, _ = served.call("/health")
        assert status == 200 and health["runtime"].startswith("onnxruntime")
        for path in PICTURES:
            _, keras_answer, _ = server.call("/predict", path.read_bytes())
            _, onnx_answer, _ = served.call("/predict", path.read_bytes())
            assert onnx_answer[0]["label"] == keras_answer[0]["label"]
            assert onnx_answer[0]["probability"] == pytest.approx(keras_answer[0]["probability"], abs=1e-5)
    finally:
        code, err = served.stop()
    assert (code, err) == (143, STOPPED.format("SIGTERM", "while serving"))


def test_bad_models_and_options_exit_2(tmp_path, model_file, capsys):
    (tmp_path / "bad.onnx").write_text("not a model")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    cases = {
        "no model": ([str(tmp_path / "absent.keras")], "no such model file"),
        "bad onnx": ([str(tmp_path / "bad.onnx")], "bad.onnx: not an ONNX model"),
        "port": ([str(model_file), "--port", "70000"], "--port 70000: must be from 0 to 65535"),
        "body": ([str(model_file), "--max-body-mb", "0"], "--max-body-mb 0: must be at least 1"),
        "host": ([str(model_file), "--host", "no.such.host.invalid"], "--host no.such.host.invalid: cannot be used"),
        "port taken": ([str(model_file), "--port", str(taken.getsockname()[1])], "cannot listen there"),
    }
    try:
        for name, (args, words) in cases.items():
            assert main(["serve", *args]) == 2, name
            err = capsys.readouterr().err
            assert words in err and err.count("\n") == 1, (name, err)
    finally:
        taken.close()


def _proc_status(pid: int, key: str) -> int:
    """A line of /proc/PID/status as a number (kB as bytes; a hexadecimal mask as it is)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            value = line.split()[1]
            return int(value, 16) if key.startswith("Sig") else int(value) * 1024
    raise KeyError(key)


def _post_until_served(address, body: bytes, refusals: list) -> tuple[int, bytes]:
    """POST /predict, again after Retry-After whenever the answer is 503, as a well-behaved client does."""
    while True:
        connection = http.client.HTTPConnection(*address, timeout=60)
        try:
            connection.request("POST", "/predict", body=body, headers={"content-type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status != 503:
            return response.status, payload
        refusals.append(response.getheader("retry-after"))
        time.sleep(float(response.getheader("retry-after") or 1) * random.uniform(0.2, 1.0))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_heavy_json_bodies_keep_health_quick_and_memory_bounded(model_file):
    """40 clients at once, each with 4 MB of JSON (256 images, indented): bodies are parsed on a worker
    thread, and at most 64 MB of them are held at once (503 + Retry-After beyond, the body unread).
    Before, the same load took /health 1.5 s to answer, raised the server's memory by 215 MB and left
    180 MB of it held afterwards; now 0.3 to 0.4 s, 80 MB, and 4 MB."""
    served = Server(model_file)  # the default limits: 8 MB bodies, 64 MB of bodies held at once
    address, pid = (served.host, int(served.port)), served.process.pid
    images = np.random.default_rng(1).integers(0, 256, (256, 28, 28))
    body = json.dumps(images.tolist(), indent=5).encode()
    assert 3.5e6 < len(body) < 4.5e6
    try:
        with contextlib.suppress(OSError):  # resets the peak (VmHWM) to the memory in use now
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        before, peak, health, done = _proc_status(pid, "VmRSS"), [0], [], threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _proc_status(pid, "VmRSS"))
                start = time.monotonic()
                status = served.call("/health")[0]
                health.append((time.monotonic() - start, status))
                time.sleep(0.03)

        refusals, answers = [], [None] * 40
        clients = [threading.Thread(target=lambda i=i: answers.__setitem__(i, _post_until_served(address, body, refusals)))
                   for i in range(40)]
        watcher = threading.Thread(target=watch)
        watcher.start()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        done.set()
        watcher.join()
        peak = max(peak[0], _proc_status(pid, "VmHWM"))
        slowest = max(seconds for seconds, _ in health)
        assert {status for _, status in health} == {200} and slowest < 1.0, sorted(health)[-5:]
        assert peak - before < 150 * 2**20, (before >> 20, peak >> 20)
        for status, payload in answers:
            assert status == 200 and len(json.loads(payload)) == 256, (status, payload[:200])
        assert refusals and set(refusals) == {"1"}  # the budget was reached, and every 503 said when to retry
        deadline = time.monotonic() + 10
        while _proc_status(pid, "VmRSS") - before > 60 * 2**20 and time.monotonic() < deadline:
            time.sleep(0.2)  # malloc_trim runs on a worker thread once the last body is let go
        assert _proc_status(pid, "VmRSS") - before < 60 * 2**20, (before >> 20, _proc_status(pid, "VmRSS") >> 20)
    finally:
        code, err = served.stop()
    assert (code, err) == (143, STOPPED.format("SIGTERM", "while serving"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_text_among_json_pixels_is_refused_before_numpy_widens_every_pixel(server):
    """One 128 kB string among 3 x 784 JSON pixels: NumPy made every pixel as wide as it (dtype <U131072),
    1.2 GB for a 134 kB body (found by tests/fuzz_inputs.py --surface http); now refused before NumPy."""
    pid = server.process.pid
    images = np.zeros((3, 28, 28), int).tolist()
    images[2][0][0] = "x" * 2**17
    with contextlib.suppress(OSError):  # resets the peak (VmHWM) to the memory in use now
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _proc_status(pid, "VmRSS")
    status, answer, _ = server.call("/predict", json.dumps(images).encode(), {"content-type": "application/json"})
    assert status == 422 and "dtype" in answer["error"], answer
    assert _proc_status(pid, "VmHWM") - before < 64 * 2**20, (before >> 20, _proc_status(pid, "VmHWM") >> 20)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keep_busy(address, stop: threading.Event) -> None:
    """Small JSON arrays, one request after another, until the server goes."""
    body = json.dumps(tiny_images(64, seed=1)[0].tolist()).encode()
    while not stop.is_set():
        try:
            _post_until_served(address, body, [])
        except (OSError, http.client.HTTPException):
            return


def _signal_case(model_file, moment: str, names: tuple, rng: random.Random) -> dict:
    """A fresh `fmnist serve`; ``names`` sent a few ms apart at a random ``moment``: "start-up" (once serve
    owns the signals: loading what is left, binding, warming up), "serving", or "busy": requests in
    flight, one of them a body that never completes (its deadline, ``--timeout``, is 10 s)."""
    port, stop, slow = _free_port(), threading.Event(), None
    process = start_serving(model_file, port=port)
    try:
        if moment == "start-up":
            deadline = time.monotonic() + 180
            while not _proc_status(process.pid, "SigCgt") & (1 << (signal.SIGTERM - 1)):
                assert process.poll() is None and time.monotonic() < deadline, process.communicate()
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 2.0))
            printed = ""
        else:
            printed = read_line(process, 180)
            assert "serving" in printed, printed
            if moment == "busy":
                slow = socket.create_connection(("127.0.0.1", port), timeout=30)
                slow.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n\x89PNG")
                for _ in range(3):
                    threading.Thread(target=_keep_busy, args=(("127.0.0.1", port), stop), daemon=True).start()
                time.sleep(2)  # its 408 then comes well before the stop's own deadline (10 s from the signal)
            time.sleep(rng.uniform(0.05, 0.5))
        sent = time.monotonic()
        for index, name in enumerate(names):
            time.sleep(rng.uniform(0, 0.05) if index else 0)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(getattr(signal, name))
        out, err = process.communicate(timeout=60)
        seconds = time.monotonic() - sent
        slow_reply = _read_until_closed(slow) if slow else None
    finally:
        stop.set()
        if slow:
            slow.close()
        if process.poll() is None:
            process.kill()
            process.communicate()
    with socket.socket() as sock:  # the port is free again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
    return {"code": process.returncode, "err": err, "out": printed + out, "seconds": seconds, "slow": slow_reply}


SIGNAL_CASES = [  # moment, signals in a row; the longest (one signal, a body pending for 10 s) first
    ("busy", ("SIGINT",)), ("busy", ("SIGTERM", "SIGINT")), ("busy", ("SIGINT", "SIGINT", "SIGINT")),
    ("start-up", ("SIGINT",)), ("start-up", ("SIGTERM", "SIGTERM")), ("start-up", ("SIGINT", "SIGTERM", "SIGINT")),
    ("serving", ("SIGTERM",)), ("serving", ("SIGINT", "SIGINT")),
]


@pytest.mark.processes
def test_signals_at_random_moments_stop_with_one_line(model_file):
    """Signals at random moments of start-up and service, one to three in a row: always one line on stderr,
    exit 128 + the first signal (130, 143), the port free again. One signal lets the requests in flight
    finish (the incomplete body gets its 408); a second one stops without waiting for them. Before: a
    traceback and exit 2 during the warm-up, two tracebacks for two signals while serving."""
    seed = random.randrange(2**32)
    cases = [(moment, names, random.Random(seed + index)) for index, (moment, names) in enumerate(SIGNAL_CASES)]

    def run(case):
        try:
            return _signal_case(model_file, *case)
        except Exception as error:  # reported below, with its case
            return {"error": repr(error)}

    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # four servers at a time on the test's cores
        results = list(pool.map(run, cases))
    for (moment, names, _), result in zip(cases, results):
        where = {"start-up": ("during start-up", "while serving")}.get(moment, ("while serving",))
        context = (seed, moment, names, result)
        assert "error" not in result and result["code"] == 128 + getattr(signal, names[0]), context
        assert result["err"] in {STOPPED.format(names[0], place) for place in where}, context  # one line
        assert ("serving" in result["out"]) == ("while serving" in result["err"]), context
        assert result["seconds"] < 30, context
        if moment == "busy":
            assert result["slow"].startswith(b"HTTP/1.1 408") if len(names) == 1 else result["slow"] == b"", context


def test_serve_config_refuses_nonsense():
    with pytest.raises(ValueError, match="max_pixels"):
        ServeConfig(max_pixels=0)
    with pytest.raises(ValueError, match="timeout"):
        ServeConfig(timeout=0)


@pytest.mark.browser
def test_page_in_a_browser_shows_what_the_model_saw(server, browser, model_file, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    picture = EXAMPLES / "sneaker.png"
    (expected,) = _cli_json(model_file, [picture], capsys)
    browser.get(server.url)
    assert "garment" in browser.title
    browser.find_element(By.ID, "file").send_keys(str(picture))
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done")
    shown = browser.find_element(By.ID, "class").text
    assert shown.startswith(expected["class_name"] + " (")
    top3 = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#top3 li")]
    assert [t.rsplit(" ", 1)[0] for t in top3] == [e["class_name"] for e in expected["top3"]]
    # the canvas holds the 28x28 image the model received, pixel for pixel
    drawn = browser.execute_script(
        "return Array.from(document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data)")
    (item,) = read.read_inputs([str(picture)])
    assert np.array_equal(np.array(drawn, np.uint8).reshape(28, 28, 4)[..., 0], item.image)
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert errors == []  # no script error, nothing the Content-Security-Policy had to block
    # a file that is not a picture: the error is shown, the page keeps working
    not_picture = Path(__file__)
    browser.find_element(By.ID, "file").send_keys(str(not_picture))
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error")
    assert "unsupported format" in browser.find_element(By.ID, "error").text
