"""How fast does the model start and serve? `fmnist predict` start-up and `fmnist serve` under load,
`.keras` against `.onnx`, on loopback only.

    python benchmarks/serve_load.py RUN_DIR [--clients 16] [--requests 250] [--max-seconds 15] [--starts 3]

RUN_DIR holds model.keras; model.onnx is made with `fmnist export` when it is missing (that needs the
test images). Two measurements:

1. start-up: `fmnist predict MODEL docs/examples/sneaker.png`, a fresh process each time, wall time from
   start to exit (median of ``--starts`` runs, the models taking turns);
2. load: `fmnist serve MODEL --port 0` in its own process; ``--clients`` threads, each on one keep-alive
   connection, send ``--requests`` POST /predict of the picture each (its raw PNG bytes), and check
   every answer (status 200, the class `fmnist predict` gives). Throughput, latency percentiles and
   errors per model; a client stops early when ``--max-seconds`` have passed, so the run is bounded, and
   the table says how many requests were sent. Exit code 1 when any request failed.

The clients run on the same 2 cores as the server, so the figures are what one machine does end to end.
"""

import argparse
import http.client
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder with model.keras (model.onnx is exported if missing)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=250, help="per client (default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="per model (default %(default)s)")
    parser.add_argument("--starts", type=int, default=3, help="predict start-ups per model (default %(default)s)")
    parser.add_argument("--picture", type=Path, default=ROOT / "docs" / "examples" / "sneaker.png")
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

    print(f"\nload: {args.clients} clients x {args.requests} requests (keep-alive), POST /predict with the PNG; "
          f"at most {args.max_seconds:g} s per model")
    print(f"{'model':<12} {'ready s':>7} {'requests':>8} {'errors':>6} {'seconds':>7} {'req/s':>7} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    failed = 0
    for model in models:
        server = Server(model)
        try:
            result = load(server, body, answer, args.clients, args.requests, args.max_seconds)
        finally:
            server.stop()
        failed += result["errors"]
        print(f"{model.name:<12} {server.ready_seconds:>7.1f} {result['requests']:>8} {result['errors']:>6} "
              f"{result['seconds']:>7.1f} {result['throughput']:>7.1f} {result['p50']:>7.1f} {result['p99']:>7.1f} "
              f"{result['max']:>7.1f}" + (f"  first error: {result['first_error']}" if result["errors"] else ""))
    print(f"{time.perf_counter() - total:.0f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
