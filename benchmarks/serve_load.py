"""How fast does the model start and serve? `fmnist predict` start-up and `fmnist serve` under load,
`.keras` against `.onnx`, and under pressure from large bodies; on loopback only.

    python benchmarks/serve_load.py RUN_DIR [--clients 16] [--requests 250] [--max-seconds 15] [--starts 3]
                                    [--json-clients 120] [--upload-clients 190]

RUN_DIR holds model.keras; model.onnx is made with `fmnist export` when it is missing (that needs the
test images). Three measurements (a count of 0 skips one):

1. start-up: `fmnist predict MODEL docs/examples/sneaker.png`, a fresh process each time, wall time from
   start to exit (median of ``--starts`` runs, the models taking turns);
2. load: `fmnist serve MODEL --port 0` in its own process; ``--clients`` threads, each on one keep-alive
   connection, send ``--requests`` POST /predict of the picture each (its raw PNG bytes), and check
   every answer (status 200, the class `fmnist predict` gives). Throughput, latency percentiles and
   errors per model; a client stops early when ``--max-seconds`` have passed, so the run is bounded, and
   the table says how many requests were sent. Exit code 1 when any request failed.
3. pressure: `fmnist serve model.keras` with its default limits; at once, ``--json-clients`` clients each
   POST 8 MB of JSON (2,286 images of 28x28 numbers: parsed in full, then refused with 413 for holding
   over 256 images: the heaviest parse a body can ask for), then ``--upload-clients`` clients each POST an
   8 MB multipart upload (a 1600x1600 noise PNG, converted and answered 200). A client refused with 503
   sends again after its Retry-After (times 0.5 to 1.5), as a well-behaved client does, until it gets
   another answer. Meanwhile /health is asked every 50 ms (its latency) and the server's resident memory
   read from /proc every 20 ms; "after" is its memory 3 s after the last answer. A request that ends
   without an answer (a reset connection, a timeout) is an error: exit code 1.

The clients run on the same 2 cores as the server, so the figures are what one machine does end to end.
"""

import argparse
import collections
import http.client
import io
import json
import os
import platform
import random
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FMNIST = [sys.executable, "-m", "fmnist"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def startup_seconds(model: Path, picture: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([*FMNIST, "predict", str(model), str(picture), "--format", "json"],
                            capture_output=True, text=True, check=True)
    return time.perf_counter() - start, json.loads(result.stdout)[0]["class_name"]


class Server:
    def __init__(self, model: Path):
        start = time.perf_counter()
        self.process = subprocess.Popen([*FMNIST, "serve", str(model), "--port", "0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
        ready, _, _ = select.select([self.process.stdout], [], [], 300)
        line = self.process.stdout.readline() if ready else ""
        if " at http://" not in line:
            self.process.kill()
            raise SystemExit(f"{model}: server did not start: {line!r} {self.process.stderr.read()[-2000:]}")
        self.ready_seconds = time.perf_counter() - start
        host_port = line.split(" at http://")[1].split("/")[0]
        self.host, self.port = host_port.rsplit(":", 1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=60)


def load(server: Server, body: bytes, expected: str, clients: int, requests: int, max_seconds: float) -> dict:
    latencies, errors, sent, lock = [], [], [], threading.Lock()
    deadline = time.perf_counter() + max_seconds
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        connection = http.client.HTTPConnection(server.host, int(server.port), timeout=60)
        mine, failed, count = [], [], 0
        barrier.wait()
        for _ in range(requests):
            if time.perf_counter() > deadline:
                break
            count += 1
            start = time.perf_counter()
            try:
                connection.request("POST", "/predict", body=body, headers={"content-type": "image/png"})
                response = connection.getresponse()
                payload = response.read()
                mine.append(time.perf_counter() - start)
                if response.status != 200 or json.loads(payload)[0]["class_name"] != expected:
                    failed.append(f"{response.status} {payload[:200]!r}")
            except (OSError, http.client.HTTPException) as error:
                failed.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection(server.host, int(server.port), timeout=60)
        connection.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failed)
            sent.append(count)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    ordered = sorted(latencies)
    return {"requests": sum(sent), "errors": len(errors),
            "seconds": seconds, "throughput": len(latencies) / seconds,
            "p50": 1000 * ordered[len(ordered) // 2], "p99": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "max": 1000 * ordered[-1], "first_error": errors[0] if errors else ""}


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def json_body(limit: int) -> bytes:
    """A JSON array of N x 28 x 28 numbers 0..255, as many images as fit in ``limit`` bytes."""
    rng, count = np.random.default_rng(0), int(limit / 4.6 / 784)
    while len(body := json.dumps(rng.integers(0, 256, (count, 28, 28)).tolist()).encode()) > limit:
        count -= 20
    return body


def upload_body(limit: int) -> tuple[bytes, str]:
    """A multipart/form-data upload of one noise PNG (incompressible) of at most ``limit`` bytes in all."""
    rng, side, boundary = np.random.default_rng(0), 1640, "fmnist-benchmark-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"noise.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    while True:
        picture = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(picture, "PNG", compress_level=1)
        body = head + picture.getvalue() + f"\r\n--{boundary}--\r\n".encode()
        if len(body) <= limit:
            return body, f"multipart/form-data; boundary={boundary}"
        side -= 40


def pressure(server: Server, body: bytes, content_type: str, clients: int) -> dict:
    """``clients`` send ``body`` at once, each again after Retry-After on a 503, until otherwise answered."""
    answers, refusals, errors, health, lock = collections.Counter(), [0], [], [], threading.Lock()
    pid, done, peak = server.process.pid, threading.Event(), [0]
    before = resident_bytes(pid)
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        barrier.wait()
        while True:
            connection = http.client.HTTPConnection(server.host, int(server.port), timeout=300)
            try:
                connection.request("POST", "/predict", body=body, headers={"content-type": content_type})
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    errors.append(repr(error))
                return
            finally:
                connection.close()
            if response.status != 503:
                with lock:
                    answers[response.status] += 1
                return
            with lock:
                refusals[0] += 1
            time.sleep(float(response.getheader("retry-after") or 1) * random.uniform(0.5, 1.5))

    def watch_memory() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], resident_bytes(pid))
            time.sleep(0.02)

    def ask_health() -> None:
        while not done.is_set():
            start = time.perf_counter()
            connection = http.client.HTTPConnection(server.host, int(server.port), timeout=300)
            try:
                connection.request("GET", "/health")
                status = connection.getresponse().status
            except (OSError, http.client.HTTPException):
                status = None
            finally:
                connection.close()
            health.append((time.perf_counter() - start, status))
            time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    watchers = [threading.Thread(target=watch_memory), threading.Thread(target=ask_health)]
    for thread in threads + watchers:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    done.set()
    for thread in watchers:
        thread.join()
    time.sleep(3)
    latencies = sorted(seconds for seconds, status in health)
    return {"answers": answers, "refusals": refusals[0], "errors": errors, "seconds": seconds,
            "health_p50": latencies[len(latencies) // 2], "health_max": latencies[-1],
            "health_failed": sum(status != 200 for _, status in health),
            "before": before, "peak": max(peak[0], resident_bytes(pid)), "after": resident_bytes(pid)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder with model.keras (model.onnx is exported if missing)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=250, help="per client (default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="per model (default %(default)s)")
    parser.add_argument("--starts", type=int, default=3, help="predict start-ups per model (default %(default)s)")
    parser.add_argument("--picture", type=Path, default=ROOT / "docs" / "examples" / "sneaker.png")
    parser.add_argument("--json-clients", type=int, default=120, help="8 MB JSON bodies at once (default %(default)s)")
    parser.add_argument("--upload-clients", type=int, default=190,
                        help="8 MB multipart uploads at once (default %(default)s)")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")

    models = [args.run_dir / "model.keras", args.run_dir / "model.onnx"]
    if not models[1].exists():
        subprocess.run([*FMNIST, "export", str(args.run_dir)], check=True)
    body = args.picture.read_bytes()
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; Python {platform.python_version()}; models in {args.run_dir}; "
          f"picture {args.picture.name} ({len(body):,} bytes)")
    total = time.perf_counter()

    times = {model.name: [] for model in models}
    for _ in range(args.starts):  # the models take turns, so noise hits both alike
        for model in models:
            seconds, answer = startup_seconds(model, args.picture)
            times[model.name].append(seconds)
    print(f"\nstart-up: fmnist predict MODEL {args.picture.name}, wall seconds from start to exit, {args.starts} runs")
    print(f"{'model':<12} {'median':>7} {'min':>6} {'max':>6}  class")
    for model in models:
        runs = times[model.name]
        print(f"{model.name:<12} {statistics.median(runs):>7.2f} {min(runs):>6.2f} {max(runs):>6.2f}  {answer}")

    failed = 0
    if args.clients:
        print(f"\nload: {args.clients} clients x {args.requests} requests (keep-alive), POST /predict with the PNG; "
              f"at most {args.max_seconds:g} s per model")
        print(f"{'model':<12} {'ready s':>7} {'requests':>8} {'errors':>6} {'seconds':>7} {'req/s':>7} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for model in models if args.clients else []:
        server = Server(model)
        try:
            result = load(server, body, answer, args.clients, args.requests, args.max_seconds)
        finally:
            server.stop()
        failed += result["errors"]
        print(f"{model.name:<12} {server.ready_seconds:>7.1f} {result['requests']:>8} {result['errors']:>6} "
              f"{result['seconds']:>7.1f} {result['throughput']:>7.1f} {result['p50']:>7.1f} {result['p99']:>7.1f} "
              f"{result['max']:>7.1f}" + (f"  first error: {result['first_error']}" if result["errors"] else ""))
    cases = [("8 MB JSON", args.json_clients, lambda: (json_body(8 * 2**20), "application/json")),
             ("8 MB upload", args.upload_clients, lambda: upload_body(8 * 2**20))]
    if args.json_clients or args.upload_clients:
        print("\npressure: model.keras, default limits; clients at once, each retrying after Retry-After until answered")
        print(f"{'bodies':<12} {'clients':>7} {'answers':<16} {'503s':>5} {'errors':>6} {'seconds':>7} "
              f"{'health p50/max s':>16} {'memory MB before/peak/after':>28}")
    for name, clients, make in cases:
        if not clients:
            continue
        body, content_type = make()
        server = Server(models[0])
        try:
            result = pressure(server, body, content_type, clients)
        finally:
            server.stop()
        failed += len(result["errors"]) + result["health_failed"]
        answers = ", ".join(f"{count} x {status}" for status, count in sorted(result["answers"].items()))
        memory = "/".join(str(result[key] >> 20) for key in ("before", "peak", "after"))
        print(f"{name:<12} {clients:>7} {answers:<16} {result['refusals']:>5} {len(result['errors']):>6} "
              f"{result['seconds']:>7.1f} {result['health_p50']:>8.2f}/{result['health_max']:<7.2f} {memory:>28}"
              + (f"  first error: {result['errors'][0]}" if result["errors"] else ""))
    print(f"{time.perf_counter() - total:.0f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
