"""Shared fixtures: the Gutenberg mirror in ../shared, and loopback HTTP and S3 servers.

Every server binds 127.0.0.1 and is started and stopped by the test session; nothing
here touches the network.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
# Read before any test runs: `_isolated_env` removes the variable from each test's environment.
MIRROR_ENV = os.environ.get("TALETUNE_GUTENBERG_MIRROR")


def _mirror_dir() -> Path | None:
    path = Path(MIRROR_ENV or SHARED / "gutenberg")
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = _mirror_dir()
    if path is None:
        pytest.skip("no Gutenberg mirror: set TALETUNE_GUTENBERG_MIRROR or put one at ../shared/gutenberg")
    return path


@pytest.fixture(scope="session")
def nltk_data() -> Path:
    """The NLTK data the evaluate stage reads: $NLTK_DATA, else ../shared/nltk_data."""
    import nltk

    path = Path(os.environ.get("NLTK_DATA") or SHARED / "nltk_data")
    if not (path / "corpora").is_dir():
        pytest.skip("no NLTK data: set NLTK_DATA or put it at ../shared/nltk_data")
    if str(path) not in nltk.data.path:
        nltk.data.path.insert(0, str(path))
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the developer's cache, mirror or S3 settings by accident."""
    for var in ("TALETUNE_GUTENBERG_MIRROR", "TALETUNE_CACHE", "TALETUNE_MODEL_CACHE", "TALETUNE_RUNS", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TALETUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub id fails at once instead of trying the network
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from components.common import storage

    storage.reset_client()
    yield
    storage.reset_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- HTTP mirror


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror folder; records every request; can fail on purpose."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, dict(self.headers)))
        plan = server.failures.get(self.path)
        if plan:
            status, body = plan.pop(0)
            if not plan:
                del server.failures[self.path]
            self.send_response(status)
            ctype = "text/html" if body.lstrip().startswith(b"<") else "text/plain"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@pytest.fixture
def http_mirror(mirror):
    """A gutenberg.org look-alike on 127.0.0.1 serving the mirror; `.requests` lists hits."""

    def handler(*args, **kwargs):
        return MirrorHandler(*args, directory=str(mirror), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    server.failures = {}
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- S3


def _wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"S3 server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def moto_server(**env: str):
    """moto's S3 server in its own process on 127.0.0.1; yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server():
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The S3 endpoint in the environment, and a fresh bucket; yields 's3://<bucket>'."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    from components.common import storage

    storage.reset_client()
    bucket = f"tt-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}"


def kill_then_rerun(args: list[str], env: dict, ready, what: str, killed_out: Path, rerun_out: Path, after_kill=None) -> subprocess.CompletedProcess:
    """Start a command, SIGKILL it once `ready()` is true (as a preempted pod dies),
    call `after_kill()` (to note what the killed run left), then run it again to the
    end; returns the rerun."""
    import signal

    proc = subprocess.Popen([*args, "--out", str(killed_out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, f"the {what} finished before it could be killed: " + proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if after_kill is not None:
        after_kill()
    return subprocess.run([*args, "--out", str(rerun_out)], cwd=ROOT, env=env, capture_output=True, text=True)


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m ...` from the checkout with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """The real SmolLM2-135M, converted from its GGUF file once per test session.

    Yields the model cache folder; tests point TALETUNE_MODEL_CACHE (or train.model_cache)
    at it so the conversion (about a minute) is not repeated.
    """
    from components.common.errors import TaletuneError
    from components.common.models import resolve

    cache = tmp_path_factory.mktemp("models")
    try:
        resolve("smollm2-135m", str(cache))
    except TaletuneError as exc:
        pytest.fail(f"the default model is missing: {exc}")
    return cache


@pytest.fixture(scope="session")
def tiny_sentiment(tmp_path_factory) -> Path:
    """A tiny random sentiment classifier folder, for pipeline runs that test plumbing."""
    from tests.tiny import make_sentiment_model

    return make_sentiment_model(tmp_path_factory.mktemp("sentiment"))
