"""`fmnist serve` in its own process on a free loopback port, for the tests that talk to it over HTTP."""

import http.client
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path


def start_serving(model: Path, *options: str, port: int = 0) -> subprocess.Popen:
    env = os.environ | {"FMNIST_COMPILATION_CACHE": "off", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "fmnist", "serve", str(model), "--port", str(port), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


class Server:
    """`fmnist serve MODEL --port 0 …` in its own process; ``url`` once it answers."""

    def __init__(self, model: Path, *options: str):
        self.process = start_serving(model, *options)
        line = read_line(self.process, 180)
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
        """(exit code, stderr) after SIGTERM."""
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, err


def read_line(process, seconds: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    return process.stdout.readline() if ready else ""
