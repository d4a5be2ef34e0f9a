"""`fmnist serve` as people use it: the real server process on a free loopback port, real HTTP requests
(good, bad, hostile, slow), a headless browser on its page, and a clean stop."""

import asyncio
import http.client
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
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

from fmnist import normalization
from fmnist.cli import main
from fmnist.errors import TooLarge, UnsupportedFormat
from fmnist.inputs import read
from fmnist.model import build_model
from fmnist.serve import ServeConfig
from fmnist.serve.app import Batcher

EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"
PICTURES = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".png", ".jpg"))
TIMEOUT = 2.0  # the served process's --timeout, short so that the slow-client tests are quick


class Server:
    """`fmnist serve MODEL --port 0 …` in its own process; ``url`` once it answers."""

    def __init__(self, model: Path, *options: str):
        env = os.environ | {"FMNIST_COMPILATION_CACHE": "off", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fmnist", "serve", str(model), "--port", "0", *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = _read_line(self.process, 180)
        if "serving" not in line:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.process.stderr.read()}")
        self.url = line.split(" at ")[1].split()[0]
        self.host, self.port = self.url.removeprefix("http://").rstrip("/").split(":")

    def call(self, path: str, body: bytes | None = None, headers: dict | None = None, method: str | None = None):
        """(status, decoded JSON or text, headers) of one request on a fresh connection."""
        connection = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        method = method or ("POST" if body is not None else "GET")
        try:
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
            except (BrokenPipeError, ConnectionResetError):  # refused before the whole body was sent: read the answer
                response = http.client.HTTPResponse(connection.sock, method=method)
                response.begin()
            payload = response.read()
            kind = response.getheader("content-type", "")
            return response.status, json.loads(payload) if "json" in kind else payload.decode(), dict(response.getheaders())
        finally:
            connection.close()

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out + err


def _read_line(process, seconds: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    return process.stdout.readline() if ready else ""


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


def _bad_requests(tmp_path) -> dict:
    png = (EXAMPLES / "sneaker.png").read_bytes()
    Image.new("RGB", (20, 20)).save(tmp_path / "x.gif")
    json_type = {"content-type": "application/json"}
    return {  # name: (path, body, headers, method, status, words in the error)
        "text": ("/predict", b"hello, I am not a picture", {}, None, 415, "not PNG or JPEG"),
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
        code, printed = served.stop()
    assert code == 0 and "stopped serving (SIGTERM)" in printed


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


def test_stops_cleanly_on_sigterm(model_file):
    served = Server(model_file)
    assert served.call("/health")[0] == 200
    code, printed = served.stop()
    assert code == 0 and printed.strip().endswith("fmnist: stopped serving (SIGTERM)")


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
