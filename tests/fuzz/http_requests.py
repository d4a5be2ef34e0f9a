"""The ``http`` surface: a real ``fmnist serve`` (the ONNX seed model) in its own process, and valid
requests (pictures, JSON, a multipart upload, /health, /) each changed one to three ways: body, JSON,
Content-Type, Content-Length, chunked bodies that lie, path, method, Host, version, odd headers. Every
request must get one of the documented answers, and /health must answer within a second after each.
"""

from __future__ import annotations

import copy
import dataclasses
import http.client
import json
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fuzz.mutations import mutate, mutate_json
from fuzz.onnx_graphs import onnx_seed
from fuzz.outcomes import Counts, peak_mb, process_peak_mb
from fuzz.seeds import seeds

# What a mutated request's Content-Type, Content-Length, path, method, Host, version and added headers become.
ODD_CONTENT_TYPES = (None, "", "text/plain", "image/png", "image/jpeg", "application/json",
                     "application/json; charset=utf-16", "APPLICATION/JSON ;", "multipart/form-data",
                     "multipart/form-data; boundary=", "multipart/form-data; boundary=fz",
                     "application/x-www-form-urlencoded", "x" * 5000, "application/json\x7f")
ODD_LENGTHS = ("", "abc", "-1", "1e3", "0x10", " 5", "+5", "5, 5", "0", str(10**20), str(2**64), "9" * 40)
ODD_PATHS = ("/predict", "/predict/", "/PREDICT", "//predict", "/predict?invert=yes", "/predict?invert=bad",
             "/predict?fz=1", "/predict?pixels=1&conversion=simple", "/predict?invert=yes&invert=no",
             "/predict?%ff=%ff", "/%2e%2e/predict", "/../predict", "/predict%00", "/" + "a" * 10_000, "*",
             "http://fz.example/predict", "/predict#fz", "/health", "/", "/health?x=1", "", "predict", "/pr\x00edict")
ODD_METHODS = ("POST", "GET", "PUT", "HEAD", "OPTIONS", "DELETE", "FZ", "post", "")
ODD_HOSTS = (None, "", "fz.example", "a" * 5000, "127.0.0.1:99999", "[::1", "h\xe9", "two, hosts")
ODD_VERSIONS = ("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1", "FZ")
ODD_HEADERS = ((b"Expect", b"100-continue"), (b"Connection", b"close"), (b"Connection", b"upgrade"),
               (b"Upgrade", b"websocket"), (b"X-Fz", b"x" * 20_000), (b"X-Fz", b"\x00"), (b"No colon", b""),
               (b"Transfer-Encoding", b"gzip, chunked"), (b"Transfer-Encoding", b"identity"), (b" X-Fz", b"folded"))


@dataclasses.dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list  # (name, value) bytes pairs; Content-Length is added on encoding unless ``length`` says
    body: bytes
    length: str | None = "auto"  # the Content-Length header: "auto" (the body's), None (none) or its text
    chunks: list | None = None  # a chunked body's raw chunks, when chunked

    def encode(self) -> bytes:
        headers = list(self.headers)
        if self.chunks is not None:
            headers.append((b"Transfer-Encoding", b"chunked"))
        if self.length is not None:
            length = str(len(self.body)) if self.length == "auto" else self.length
            headers.append((b"Content-Length", length.encode()))
        lines = [f"{self.method} {self.target} {self.version}".encode("latin-1", "replace")]
        lines += [name + b": " + value for name, value in headers]
        body = b"".join(self.chunks) if self.chunks is not None else self.body
        return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body: bytes, rng: random.Random) -> list[bytes]:
    """``body`` as chunks of random sizes, with the last chunk; sometimes a chunk that lies or is missing."""
    sizes, at = [], 0
    while at < len(body):
        sizes.append(min(len(body) - at, rng.choice((1, 7, 100, 4096, 10**6))))
        at += sizes[-1]
    chunks, at = [], 0
    for size in sizes:
        chunks.append(f"{size:x}".encode() + b"\r\n" + body[at: at + size] + b"\r\n")
        at += size
    chunks.append(b"0\r\n\r\n")
    draw = rng.random()
    if draw < 0.1:
        chunks[0] = rng.choice((b"zz\r\n", b"-1\r\n", b"ffffffffffffffffff\r\n", b"1;ext=1\r\nx\r\n", b"\r\n"))
    elif draw < 0.15 and len(chunks) > 1:
        chunks.pop()  # no last chunk: the body never ends (408 after --timeout)
    return chunks


def request_starts() -> list[Request]:
    """Valid requests: a PNG and a JPEG body, one and three images as JSON, a multipart upload, /health, /."""
    pictures = seeds()
    item = np.zeros((28, 28), np.uint8)
    item[6:22, 9:19] = 200
    boundary = "fzboundary"
    upload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"grey.png\"\r\n"
              "Content-Type: image/png\r\n\r\n").encode() + pictures["grey.png"] + f"\r\n--{boundary}--\r\n".encode()
    host = (b"Host", b"127.0.0.1")

    def post(kind: str, body: bytes) -> Request:
        return Request("POST", "/predict", "HTTP/1.1", [host, (b"Content-Type", kind.encode())], body)

    return [post("image/png", pictures["grey.png"]), post("image/png", pictures["rgb.png"]),
            post("image/jpeg", pictures["base.jpg"]), post("application/json", json.dumps(item.tolist()).encode()),
            post("application/json", json.dumps([item.tolist()] * 3).encode()),
            post(f"multipart/form-data; boundary={boundary}", upload),
            Request("GET", "/health", "HTTP/1.1", [host], b"", None),
            Request("GET", "/", "HTTP/1.1", [host], b"", None)]


def _set_header(request: Request, name: bytes, value) -> None:
    request.headers = [pair for pair in request.headers if pair[0].lower() != name.lower()]
    if value is not None:
        request.headers.append((name, value.encode("latin-1", "replace") if isinstance(value, str) else value))


def mutate_request(request: Request, rng: random.Random) -> str:
    """Change ``request`` one way; the way, in a word."""
    kind = rng.choice(("body", "json", "content type", "length", "chunked", "path", "method", "host", "version",
                       "header"))
    if kind == "body":
        request.body = mutate(request.body, rng) if request.body else bytes(rng.randrange(256) for _ in range(64))
    elif kind == "json":
        request.body = mutate_json(request.body or b"[]", rng)
        _set_header(request, b"Content-Type", "application/json")
    elif kind == "content type":
        _set_header(request, b"Content-Type", rng.choice(ODD_CONTENT_TYPES))
    elif kind == "length":  # declared longer than sent: the server waits --timeout, then 408
        size = len(request.body)
        request.length = rng.choice(ODD_LENGTHS + (None, str(size + 10), str(max(0, size - 10))))
    elif kind == "chunked":
        request.chunks, request.length = chunked(request.body, rng), rng.choice((None, None, None, "auto"))
    elif kind == "path":
        request.target = rng.choice(ODD_PATHS)
    elif kind == "method":
        request.method = rng.choice(ODD_METHODS)
    elif kind == "host":
        _set_header(request, b"Host", rng.choice(ODD_HOSTS))
        if rng.random() < 0.2:
            request.headers.append((b"Host", b"fz.example"))  # twice
    elif kind == "version":
        request.version = rng.choice(ODD_VERSIONS)
    else:
        for _ in range(rng.choice((1, 1, 200))):
            request.headers.append(rng.choice(ODD_HEADERS))
    return kind


# A hang is what the fuzzer looks for: a server that never answers. The server answers a slow body with 408
# after its --timeout of 1 s, and a case in a quiet moment within about a second; the bound leaves room for
# a machine also running the other test worker and background work (under such load one case went
# unanswered for 5 s, the bound before).
ANSWER_S = 20


def exchange(address, payload: bytes, method: str, timeout: float) -> tuple[int, dict, bytes | None]:
    """Send ``payload`` on a new connection, then read (as curl and http.client do); (status, headers, body)
    of the answer, the body None when a reset cut it. Raises when there is no answer: the connection
    closed or reset without one, or nothing within ``timeout``."""
    with socket.create_connection(address, timeout=timeout) as connection:
        try:
            connection.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):  # answered before the whole body was sent: read on
            pass
        response = http.client.HTTPResponse(connection, method=method)
        response.begin()
        headers = {key.lower(): value for key, value in response.getheaders()}
        try:
            return response.status, headers, response.read()
        except ConnectionResetError:
            return response.status, headers, None


def fuzz_http(seconds: float, seed: int, count: int | None = None) -> dict:
    """`fmnist serve` (the ONNX seed model, --timeout 1, --max-body-mb 1) in its own process; each case one
    valid request changed one to three ways, on a new connection. The answer must be a 2xx, or a 4xx or
    503 with a JSON error (or the HTTP parser's own 400 for what is not HTTP/1.1); never a 5xx otherwise,
    a connection closed without an answer or no answer within ANSWER_S; and /health must answer 200 within a
    second after every case. The server must stop on SIGTERM with 143 and no traceback."""
    import signal
    import subprocess

    rng, counts, statuses, slowest = random.Random(seed), Counts(), {}, 0.0
    set_up = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fmnist-fuzz-") as temporary, \
            open(Path(temporary) / "server.log", "w+") as log:
        server, address = start_server(Path(temporary), log)
        try:
            starts, started, cases = request_starts(), time.monotonic(), 0
            while time.monotonic() - started < seconds and (count is None or cases < count) and server.poll() is None:
                cases += 1
                request = copy.deepcopy(rng.choice(starts))
                slowest = max(slowest, http_case(address, request, rng, counts, statuses, cases))
            if server.poll() is not None:
                counts.crash("the server", f"exited {server.returncode} while serving")
            server_peak = process_peak_mb(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(60)
            except subprocess.TimeoutExpired:  # a server that does not stop is a crash too
                server.kill()
                code = server.wait()
        log.seek(0)
        server_stderr(log.read(), code, counts)
    return {"surface": "http", "cases": cases, "outcomes": counts.outcomes, "statuses": statuses,
            "crashes": counts.crashes, "first_crashes": counts.first_crashes, "health_slowest_s": round(slowest, 3),
            "set_up_seconds": round(started - set_up, 1), "seconds": round(time.monotonic() - started, 1),
            "seed": seed, "peak_rss_mb": peak_mb(), "server_peak_rss_mb": server_peak}


def start_server(root: Path, log) -> tuple:
    """`fmnist serve` of the ONNX seed model on a free loopback port, its stderr to ``log``; the process and
    its address once it answers."""
    import select
    import subprocess

    (root / "model.onnx").write_bytes(onnx_seed().SerializeToString())
    server = subprocess.Popen([sys.executable, "-m", "fmnist", "serve", str(root / "model.onnx"), "--port", "0",
                               "--timeout", "1", "--max-body-mb", "1", "--max-pixels", "4000000"],
                              stdout=subprocess.PIPE, stderr=log, text=True, cwd=root)
    line = server.stdout.readline() if select.select([server.stdout], [], [], 180)[0] else ""
    if "serving" not in line:
        server.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    host, port = line.split(" at http://")[1].split("/")[0].rsplit(":", 1)
    return server, (host, int(port))


def http_case(address, request: Request, rng: random.Random, counts: Counts, statuses: dict, number: int) -> float:
    """``request`` changed one to three ways and sent, its answer tallied, then /health asked; the seconds
    /health took."""
    ways = [mutate_request(request, rng) for _ in range(rng.randint(1, 3))]
    label = f"case {number}: {request.method} {request.target[:40]!r}, {', '.join(ways)}"
    try:
        status, headers, body = exchange(address, request.encode(), request.method, ANSWER_S)
    except Exception:  # noqa: BLE001  no answer: what the fuzzer looks for
        counts.add("no answer")
        counts.crash(label)
    else:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        counts.add(http_outcome(status, headers, body, request.method, counts, label))
    asked = time.monotonic()
    try:
        health = exchange(address, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "GET", 1)[0]
    except Exception:  # noqa: BLE001  none within the second
        health = None
    if health != 200:
        counts.crash(label, f"/health answered {health} after it")
    return time.monotonic() - asked


def server_stderr(printed: str, code: int, counts: Counts) -> None:
    """The server's exit status after SIGTERM (143) and its stderr: no traceback."""
    raised = [next(line for line in block.splitlines()[1:] if line and not line[0].isspace())  # the exception
              for block in printed.split("Traceback (most recent call last):")[1:]
              if "above exception" not in block]  # chained: the last of the chain says what happened
    if code != 143 or raised:
        counts.crash("the server", f"exit {code}; stderr: {raised[:3]} {printed[-300:]}")


def http_outcome(status: int, headers: dict, body: bytes | None, method: str, counts: Counts, label: str) -> str:
    """The answer's outcome in words; a crash recorded when it is not one of the documented ones."""
    json_answer = "json" in headers.get("content-type", "")
    try:
        answer = json.loads(body) if body and json_answer else None
    except ValueError:
        answer = None
    if body == b"" and method == "HEAD" and (json_answer or status < 300):
        return "answered" if status < 300 else "refused"  # a HEAD answer has no body
    if body is not None and 200 <= status < 300 and (answer is not None or not json_answer):
        return "answered"  # JSON that parses, or the page
    if status in (400, 404, 405, 408, 413, 415, 422, 503) and isinstance(answer, dict) and "error" in answer:
        return "refused" if status != 503 else "busy"
    if body is not None and status in (400, 501) and not json_answer:
        return "refused by the HTTP parser"  # h11's answer to what is not HTTP/1.1 the application could be given
    counts.crash(label, f"{status} {headers.get('content-type')!r}: {(body or b'')[:200]!r}")
    return "crash"
