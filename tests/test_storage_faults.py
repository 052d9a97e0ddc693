"""Faults of a live S3 endpoint, with a loopback TCP relay between boto3 and moto.

moto's server keeps its objects in memory, so stopping it would lose them; the relay
stands for the endpoint instead: `stop()` closes its listening socket and every live
connection (the endpoint vanishes mid-task), `start()` listens again on the same port
(it comes back). Covered: the generate CLI losing its endpoint after some chunks fails
with one `error:` line that names it and no traceback, and once the endpoint is back
the next run writes only the missing chunks;
a body cut off mid-download is one clear error and leaves no partial file.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading

import boto3
import pytest

from components.common import storage
from components.common.catalog import load_catalog
from components.common.errors import TaletuneError
from components.generate.stage import run_generate
from tests.conftest import ROOT, free_port


class Relay:
    """127.0.0.1:port -> the S3 server; `cut_after` bytes of a connection's answers, then it hangs up."""

    def __init__(self, target_url: str, cut_after: int | None = None):
        self.target = ("127.0.0.1", int(target_url.rsplit(":", 1)[1]))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cut_after = cut_after
        # Bytes in a PUT's request line: once such an upload has gone through, the relay
        # stops at the next request, so the endpoint vanishes exactly after the first
        # chunk is stored (a test polling from outside could be too late on a fast machine).
        self.stop_after_put: bytes | None = None
        self._tripped = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket()
        # The port's old connections linger in TIME_WAIT; without this the restart cannot bind.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)  # accept() wakes often enough to see stop()
        self.stop_after_put = None
        self._tripped.clear()
        self._running.set()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Refuse new connections and hang up on the live ones, as a stopped server does."""
        self._running.clear()
        if self._thread:
            self._thread.join()
        with self._lock:
            for sock in self._sockets:
                _hang_up(sock)
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._running.is_set():
                try:
                    client, _ = listener.accept()
                except socket.timeout:
                    continue
                server = socket.create_connection(self.target)
                with self._lock:
                    self._sockets |= {client, server}
                threading.Thread(target=self._pump, args=(client, server, None, True), daemon=True).start()
                threading.Thread(target=self._pump, args=(server, client, self.cut_after), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None, requests: bool = False) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if requests and self._tripped.is_set() and data[:4] in (b"GET ", b"PUT ", b"HEAD", b"POST", b"DELE"):
                    threading.Thread(target=self.stop, daemon=True).start()
                    break
                if requests and self.stop_after_put and data.startswith(b"PUT ") and self.stop_after_put in data.split(b"\r\n", 1)[0]:
                    self._tripped.set()
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: limit - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass  # the other side, or stop(), closed it
        for sock in (src, dst):
            _hang_up(sock)


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv(); close() alone does not
    except OSError:
        pass
    sock.close()


@pytest.fixture
def relay(s3_server):
    relay = Relay(s3_server)
    relay.start()
    yield relay
    relay.stop()


# ---------------------------------------------------------------- the endpoint stops mid-task


CATALOG = "genres:\n  horror: {prompt: Write me a horror story, books: [1]}\n  fairy_tale: {prompt: Write me a fairy tale, books: [2]}\n"
N = 8  # stories per genre: 8 chunks of 2 short ones (starting the CLI is most of the time)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.tiny import make_model

    return make_model(tmp_path_factory.mktemp("tiny") / "model")


def _chunks(moto, bucket: str) -> dict[str, tuple]:
    """The chunk objects as moto holds them (asked directly, not through the relay)."""
    listing = moto.list_objects_v2(Bucket=bucket, Prefix="stories/")
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listing.get("Contents", []) if "/chunk-" in o["Key"]}


def _written(log: str) -> tuple[set[int], int]:
    """(chunk numbers the run wrote, the set's chunk count), from the stage's log."""
    found = [(int(a), int(b)) for a, b in re.findall(r"chunk (\d+) of (\d+) written", log)]
    return {a - 1 for a, _ in found}, (found[0][1] if found else 0)


def _settings(tiny, s3: str) -> dict[str, object]:
    """The set's settings, as `--set` arguments take them and as GenerateConfig does."""
    # fp32: `auto` may pick bf16 weights, whose first steps are slow on a small CPU.
    return {"model": str(tiny), "n": N, "batch_size": 2, "chunk_size": 2, "precision": "fp32", "sampling.max_new_tokens": 8,
            "progress_root": f"{s3}/stories"}


def test_the_endpoint_stopping_mid_set_is_one_line_and_the_rerun_keeps_finished_chunks(
        tiny, s3, s3_server, relay, tmp_path, monkeypatch, caplog):
    bucket, moto = s3[len("s3://") :], boto3.client("s3", endpoint_url=s3_server)
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    settings = _settings(tiny, s3)
    args = [sys.executable, "-m", "components.generate", "--catalog", str(tmp_path / "catalog.yaml"), "--out", str(tmp_path / "out"),
            *(arg for key, value in settings.items() for arg in ("--set", f"{key}={value}"))]
    # The client's own settings (5 tries): a refused connection fails in under a second.
    env = {**os.environ, "AWS_ENDPOINT_URL": relay.url}
    log = tmp_path / "first.log"
    relay.stop_after_put = b"/chunk-"
    with open(log, "w") as err:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        proc.wait(timeout=180)
    relay.stop()
    first = log.read_text()
    errors = [line for line in first.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, first[-3000:]
    assert len(errors) == 1 and f"S3 endpoint {relay.url}" in errors[0], first[-3000:]
    assert "Traceback" not in first
    kept = _chunks(moto, bucket)
    total = _written(first)[1]
    assert kept and len(kept) < total, "the endpoint must stop after some chunks and before the last"
    assert not (tmp_path / "out" / "stories.jsonl").exists()

    # The endpoint is back. The next run is the same task in this process: a second CLI
    # start (torch, transformers) would double the test's time and test nothing more.
    relay.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", relay.url)
    storage.reset_client()
    caplog.set_level(logging.INFO, logger="components.generate.stage")
    run_generate(load_catalog(str(tmp_path / "catalog.yaml")), _config(settings), tmp_path / "out")
    assert "resuming the set" in caplog.text
    kept_numbers = {int(re.search(r"chunk-(\d+)", key).group(1)) for key in kept}
    assert _written(caplog.text)[0] == set(range(total)) - kept_numbers, "only the missing chunks are generated"
    after = _chunks(moto, bucket)
    assert {k: after[k] for k in kept} == kept, "the finished chunks are not rewritten"
    assert len(after) == total
    lines = (tmp_path / "out" / "stories.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 2 * N


def _config(settings: dict):
    from components.generate.config import GenerateConfig

    plain = {k: v for k, v in settings.items() if "." not in k}
    return GenerateConfig(**plain, sampling={"max_new_tokens": settings["sampling.max_new_tokens"]})


# ---------------------------------------------------------------- a body cut off mid-download


def test_a_body_cut_off_mid_download_is_one_clear_error_and_no_partial_file(s3, s3_server, monkeypatch, tmp_path):
    storage.write_bytes(f"{s3}/model.bin", bytes(range(256)) * 4096)  # 1 MiB
    cutting = Relay(s3_server, cut_after=64 << 10)
    cutting.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", cutting.url)
        storage.reset_client()
        target = tmp_path / "model.bin"
        target.write_bytes(b"the previous copy")
        # s3transfer retries the body itself, then raises its own RetriesExceededError.
        with pytest.raises(TaletuneError, match=f"lost the connection to the S3 endpoint {cutting.url} for {s3}/model.bin"):
            storage.download_file(f"{s3}/model.bin", target)
        assert target.read_bytes() == b"the previous copy"
        assert [p.name for p in tmp_path.iterdir()] == ["model.bin"], "no partial or temp file is left"
        with pytest.raises(TaletuneError, match=f"lost the connection to the S3 endpoint {cutting.url}"):
            storage.read_bytes(f"{s3}/model.bin")
    finally:
        cutting.stop()
