"""Start a real `velollm serve` process on loopback for API tests."""
import os
import re
import signal
import subprocess
import time
from contextlib import contextmanager

import requests


class ServerProcess:
    def __init__(self, proc, port, log_path):
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.base = f"http://127.0.0.1:{port}"

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def url(self, path: str) -> str:
        return self.base + path


@contextmanager
def serve(velollm_bin, model, *args, ready_timeout=120, tmp_path=None):
    """Runs `velollm serve -m MODEL --port 0 ARGS`, waits for /ready, yields a ServerProcess."""
    log_path = os.path.join(tmp_path or "/tmp", f"velollm-serve-{os.getpid()}-{time.monotonic_ns()}.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([str(velollm_bin), "serve", "-m", str(model), "--port", "0", *map(str, args)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.time() + ready_timeout
        while time.time() < deadline and port is None:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n" + open(log_path).read())
            m = re.search(r"listening on http://[^:]+:(\d+)", open(log_path).read())
            if m:
                port = int(m.group(1))
            else:
                time.sleep(0.05)
        assert port, "server did not report its port:\n" + open(log_path).read()
        sp = ServerProcess(proc, port, log_path)
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n" + sp.log())
            try:
                if requests.get(sp.url("/ready"), timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("server not ready in time:\n" + sp.log())
        yield sp
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def metric(server: ServerProcess, name: str) -> float:
    """Sum of a Prometheus metric's samples (all label sets)."""
    text = requests.get(server.url("/metrics"), timeout=5).text
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"metric {name} missing from /metrics"
    return total
