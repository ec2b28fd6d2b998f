"""Debian's nginx with deploy/'s recipe in front of a server, on this machine only: a temporary prefix
(config, cache, logs, temp files), a free loopback port, one worker, in the foreground; stopped with
SIGQUIT and a bounded wait. For tests and bench/classroom.py. A missing nginx says how to install it."""

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.live_server import ROOT, Started, free_port

STOP_TIMEOUT_S = 10
MISSING = "nginx is not installed: apt-get install nginx (Debian's package; .ci/run installs it)"


def recipe():
    """deploy/render_nginx.py, loaded from its file (deploy/ is not a package: it is copied to servers)."""
    spec = importlib.util.spec_from_file_location("render_nginx", ROOT / "deploy" / "render_nginx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAIN = """# the main file around the recipe: a throwaway nginx on loopback, everything under its prefix
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/attnscope.conf;
}}
"""


class Nginx(Started):
    """nginx in front of upstream (host:port), listening on 127.0.0.1:port (default: a free one)."""

    def __init__(self, upstream: str, port: int | None = None):
        binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
        if binary is None:
            raise RuntimeError(MISSING)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = Path(tempfile.mkdtemp(prefix="attnscope-nginx-"))
        self.prefix.chmod(0o755)  # nginx's workers run as nobody when it is started as root: they must reach the cache
        (self.prefix / "temp").mkdir()
        self.access_log = self.prefix / "access.log"
        site = recipe().render(listen=f"127.0.0.1:{self.port}", server_name="127.0.0.1 localhost", upstream=upstream,
                               cache_dir=str(self.prefix / "cache"), access_log=str(self.access_log))
        (self.prefix / "attnscope.conf").write_text(site)
        (self.prefix / "nginx.conf").write_text(MAIN.format(prefix=self.prefix))
        self.log = open(self.prefix / "stderr.log", "w+b")
        args = [binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), "-e", str(self.prefix / "error.log")]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            p = self.prefix / name
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout} s:\n{self.output()}")

    def logged(self, n: int, timeout: float = 30) -> list[tuple[str, int, str]]:
        """cache_statuses() once at least n requests are logged: nginx writes a request's line after its
        answer is sent, so a client can have the answer before the line is there (bounded wait)."""
        deadline = time.monotonic() + timeout
        while len(got := self.cache_statuses()) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return got

    def cache_statuses(self) -> list[tuple[str, int, str]]:
        """(request line, status, $upstream_cache_status) of every request logged so far."""
        out = []
        for line in self.access_log.read_text(errors="replace").splitlines() if self.access_log.exists() else ():
            m = re.search(r'"([^"]*)" (\d{3}) \d+ cache=(\S+)', line)
            if m:
                out.append((m.group(1), int(m.group(2)), m.group(3)))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)

    def close(self) -> None:
        self.stop()
        self.log.close()
        shutil.rmtree(self.prefix, ignore_errors=True)
