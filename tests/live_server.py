"""A real server for tests and benchmarks: `uvicorn app.main:app` in a subprocess on a free
loopback port, configured by environment variables only, its output kept in a file (a pipe nobody
reads could fill and block it), stopped with SIGTERM and a bounded wait."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 10


class ServerError(RuntimeError):
    """The server exited or never became ready; the message carries its output."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Started:
    """A process started by a test, as a context manager: ready on entry (closed if it never gets ready),
    closed on exit. Subclasses give wait_ready() and close()."""

    def __enter__(self):
        try:
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()


class Server(Started):
    """`uvicorn app.main:app --workers N`. env is the whole environment (default: this process's,
    with env_extra on top). WORKERS is set too: the app divides the BLAS threads among the workers."""

    def __init__(self, env: dict[str, str] | None = None, workers: int = 1, env_extra: dict[str, str] | None = None,
                 access_log: bool = False):
        self.workers, self.port = workers, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+b")
        env = {**(os.environ if env is None else env), "WORKERS": str(workers), **(env_extra or {})}
        args = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(workers)] + ([] if access_log else ["--no-access-log"])
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 120) -> float:
        """Until every worker has finished its lifespan and the API answers; returns the seconds taken."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise ServerError(f"the server exited with {self.proc.returncode} before it was ready:\n{self.output()}")
            if self.output().count("Application startup complete") >= self.workers:
                try:
                    if httpx.get(self.url + "/api/models", timeout=5).status_code == 200:
                        return time.monotonic() - t0
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"the server was not ready after {timeout} s:\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM, a bounded wait, then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        return self.proc.returncode

    def close(self) -> None:
        self.stop()
        self.log.close()


class ThreadServer:
    """An app (create_app(...)) under a real uvicorn in a thread of this process, on a free loopback
    port: for tests that look inside the server while a real HTTP client (or a proxy) talks to it."""

    def __init__(self, app, start_timeout: float = 120):
        import threading

        import uvicorn

        self.app, self.port = app, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.start_timeout = start_timeout

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.__exit__()
                raise ServerError("the in-process server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
