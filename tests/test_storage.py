"""The storage layer on local paths and on S3 (moto's server on 127.0.0.1, over HTTP).

Also: local writes are durable (file fsynced before the rename, folder after it), each
writer has its own temp file, a full disk (a real 256 KiB tmpfs where mounting is
allowed, an injected ENOSPC everywhere) is one clear error that loses nothing, and a bad
S3 environment (endpoint, profile, tries) never escapes as a botocore traceback.
Faults of a live endpoint are in test_storage_faults.py.
"""

import errno
import json
import os
import stat
import subprocess
import threading

import boto3
import pytest

from components.common import storage
from components.common.errors import TaletuneError
from tests.conftest import free_port, moto_server, run_cli


def test_local_roundtrip_is_atomic_and_listed(tmp_path):
    target = tmp_path / "a" / "b.txt"
    storage.write_text(str(target), "hello")
    assert storage.read_text(str(target)) == "hello"
    assert not list(target.parent.glob(".*.tmp")), "temp files must not be left behind"
    storage.write_bytes(str(tmp_path / "a" / "c" / "d.bin"), b"\x00\x01")
    assert storage.list_prefix(str(tmp_path / "a")) == ["b.txt", "c/d.bin"]
    assert storage.exists(str(target)) and not storage.exists(str(tmp_path / "nope"))
    assert storage.copy_prefix(str(tmp_path / "a"), str(tmp_path / "copy")) == 2
    assert (tmp_path / "copy" / "c" / "d.bin").read_bytes() == b"\x00\x01"


def test_s3_roundtrip_list_exists_copy(s3, tmp_path):
    storage.write_text(f"{s3}/books/1.txt", "one")
    storage.write_bytes(f"{s3}/books/sub/2.txt", b"two")
    assert storage.read_text(f"{s3}/books/1.txt") == "one"
    assert storage.exists(f"{s3}/books/1.txt")
    assert not storage.exists(f"{s3}/books/3.txt")
    assert storage.list_prefix(f"{s3}/books") == ["1.txt", "sub/2.txt"]
    assert storage.copy_prefix(f"{s3}/books", f"{s3}/mirror") == 2
    assert storage.read_bytes(f"{s3}/mirror/sub/2.txt") == b"two"
    # Between S3 and local, both ways.
    assert storage.copy_prefix(f"{s3}/books", str(tmp_path / "down")) == 2
    assert (tmp_path / "down" / "1.txt").read_text() == "one"
    assert storage.copy_prefix(str(tmp_path / "down"), f"{s3}/up") == 2
    assert storage.list_prefix(f"{s3}/up") == ["1.txt", "sub/2.txt"]


def test_s3_multipart_upload_for_large_files(s3, s3_server, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (12 * 4096))  # 12 MiB
    storage.upload_file(big, f"{s3}/big.bin", multipart_threshold=5 << 20)
    bucket = s3[len("s3://") :]
    head = boto3.client("s3", endpoint_url=s3_server).head_object(Bucket=bucket, Key="big.bin")
    assert "-" in head["ETag"], "a multipart upload has an ETag of the form <md5>-<parts>"
    storage.download_file(f"{s3}/big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()


def test_missing_bucket_is_one_clear_error(s3, tmp_path):
    with pytest.raises(TaletuneError, match="bucket 'no-such-bucket' does not exist"):
        storage.check_writable("s3://no-such-bucket/cache")
    with pytest.raises(TaletuneError, match="does not exist"):
        storage.exists("s3://no-such-bucket/x.txt")
    # boto3's own transfer errors (S3UploadFailedError) are one message too, not a traceback.
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(TaletuneError, match="bucket 'no-such-bucket' does not exist"):
        storage.upload_file(tmp_path / "f.txt", "s3://no-such-bucket/f.txt")


def test_unreachable_endpoint_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    storage.reset_client()
    with pytest.raises(TaletuneError, match="cannot reach the S3 endpoint"):
        storage.write_text("s3://bucket/x.txt", "x")


@pytest.fixture(scope="module")
def s3_with_auth():
    """A second moto server that checks credentials (INITIAL_NO_AUTH_ACTION_COUNT=0)."""
    with moto_server(INITIAL_NO_AUTH_ACTION_COUNT="0") as url:
        yield url


def test_wrong_credentials_are_one_clear_error(s3_with_auth, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_with_auth)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    storage.reset_client()
    with pytest.raises(TaletuneError, match="refused the credentials"):
        storage.check_writable("s3://bucket/cache")


def test_a_bad_s3_environment_is_one_clear_error(monkeypatch):
    """What is wrong before any request: each is one message, not a botocore traceback."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "not a url")
    storage.reset_client()
    with pytest.raises(TaletuneError, match="AWS_ENDPOINT_URL 'not a url' is not a usable S3 endpoint"):
        storage.exists("s3://bucket/x.txt")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    storage.reset_client()
    with pytest.raises(TaletuneError, match="AWS_MAX_ATTEMPTS is 'many'"):
        storage.list_prefix("s3://bucket/books")
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    storage.reset_client()
    with pytest.raises(TaletuneError, match="AWS_PROFILE"):
        storage.write_text("s3://bucket/x.txt", "x")


def test_listing_and_downloading_through_a_dead_endpoint_are_one_clear_error(monkeypatch, tmp_path):
    """The paginator's lazy pages and s3transfer's download are guarded too."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no backoff between tries: faster, same message
    storage.reset_client()
    with pytest.raises(TaletuneError, match=f"cannot reach the S3 endpoint {endpoint}"):
        storage.list_prefix("s3://bucket/books")
    with pytest.raises(TaletuneError, match=f"cannot reach the S3 endpoint {endpoint}"):
        storage.download_file("s3://bucket/books/1.txt", tmp_path / "1.txt")
    assert list(tmp_path.iterdir()) == [], "a failed download leaves no temp file"


@pytest.fixture
def hang_up_server():
    """127.0.0.1:port that accepts each connection and closes it unanswered; `.tries` counts them."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = type("HangUp", (), {"tries": 0, "url": f"http://127.0.0.1:{listener.getsockname()[1]}"})()

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed at teardown
            server.tries += 1
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def test_aws_max_attempts_caps_the_tries_and_a_hang_up_names_the_endpoint(hang_up_server, monkeypatch):
    """botocore ignores AWS_MAX_ATTEMPTS once Config sets `retries`; the client reads it.
    (The HTTP layer below adds one connection to each call, so tries are compared, not counted.)"""
    monkeypatch.setenv("AWS_ENDPOINT_URL", hang_up_server.url)
    counts = []
    for attempts in (None, "2"):
        if attempts:
            monkeypatch.setenv("AWS_MAX_ATTEMPTS", attempts)
        storage.reset_client()
        before = hang_up_server.tries
        with pytest.raises(TaletuneError, match=f"lost the connection to the S3 endpoint {hang_up_server.url} for s3://bucket/x.txt"):
            storage.write_text("s3://bucket/x.txt", "x")
        counts.append(hang_up_server.tries - before)
    assert counts[0] - counts[1] == 5 - 2, counts


def test_a_missing_object_is_named_and_its_download_leaves_the_old_file(s3, tmp_path):
    target = tmp_path / "book.txt"
    target.write_text("the copy from last time")
    with pytest.raises(TaletuneError, match=f"{s3}/nope.txt does not exist"):
        storage.download_file(f"{s3}/nope.txt", target)
    with pytest.raises(TaletuneError, match=f"{s3}/nope.txt does not exist"):
        storage.read_bytes(f"{s3}/nope.txt")
    assert target.read_text() == "the copy from last time"
    assert [p.name for p in tmp_path.iterdir()] == ["book.txt"], "no temp file is left"


# ---------------------------------------------------------------- durable local writes

# Every way the storage layer writes a local file goes through `_writer(how, ...)`.
PAYLOAD = bytes(range(256)) * 2048  # 512 KiB: more than the 256 KiB tmpfs below holds


def _writer(how: str, tmp_path, request, data: bytes = PAYLOAD):
    """A function that writes `data` to a local target the way `how` names."""
    if how == "write_bytes":
        return lambda target: storage.write_bytes(str(target), data)
    if how in ("upload_file local", "download_file local"):
        source = tmp_path / "source.bin"
        source.write_bytes(data)
        if how == "upload_file local":
            return lambda target: storage.upload_file(source, str(target))
        return lambda target: storage.download_file(str(source), target)
    s3 = request.getfixturevalue("s3")
    storage.write_bytes(f"{s3}/source.bin", data)
    return lambda target: storage.download_file(f"{s3}/source.bin", target)


WAYS = ["write_bytes", "upload_file local", "download_file local", "download_file s3"]


def _inode(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


@pytest.mark.parametrize("how", WAYS)
def test_a_written_file_is_synced_before_its_rename_and_the_folder_after(how, tmp_path, request, monkeypatch):
    """Without the fsync, a crash after the rename can leave an empty adapter_model.safetensors
    beside a training.json that says the level is done."""
    write = _writer(how, tmp_path, request)
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync-dir" if stat.S_ISDIR(st.st_mode) else "fsync-file", (st.st_dev, st.st_ino)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "out" / "adapter_model.safetensors"
    write(target)
    assert target.read_bytes() == PAYLOAD
    # The renamed temp file keeps its inode: the one fsynced must be the target's now.
    file_sync = events.index(("fsync-file", _inode(target)))
    rename = events.index(("replace", str(target)))
    dir_sync = events.index(("fsync-dir", _inode(target.parent)))
    assert file_sync < rename < dir_sync, events


def test_concurrent_downloads_of_one_object_each_use_their_own_temp_file(s3, tmp_path, monkeypatch):
    """Four threads fetch one 4 MiB object to one path at once: all succeed, the file is
    whole, and no two renamed the same temp file (a shared `.name.part` did)."""
    data = os.urandom(4 << 20)
    storage.write_bytes(f"{s3}/model.bin", data)
    target = tmp_path / "model.bin"
    renamed, errors = [], []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renamed.append(str(src)), real_replace(src, dst))[1])
    barrier = threading.Barrier(4)

    def fetch():
        barrier.wait()
        try:
            storage.download_file(f"{s3}/model.bin", target)
        except Exception as exc:  # collected: an assert in a thread would pass unseen
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() == data
    assert len(renamed) == 4 and len(set(renamed)) == 4, renamed
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"], "no temp file is left"


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def full_disk(tmp_path):
    """A real 256 KiB tmpfs (needs root, as in CI); skipped where mounting is refused."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command; test_an_injected_full_disk covers ENOSPC without one")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); test_an_injected_full_disk covers ENOSPC without root")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _assert_nothing_lost(folder, target, old: bytes) -> None:
    assert target.read_bytes() == old, "the previous file at the target is untouched"
    assert sorted(p.name for p in folder.iterdir()) == sorted(["done.txt", target.name]), "no temp file is left"
    assert (folder / "done.txt").read_text() == "finished earlier"


@pytest.mark.parametrize("how", WAYS)
def test_a_full_disk_is_one_clear_error_and_loses_nothing(how, full_disk, tmp_path, request):
    write = _writer(how, tmp_path, request)
    (full_disk / "done.txt").write_text("finished earlier")
    target = full_disk / "adapter_model.safetensors"
    target.write_bytes(b"the previous level")
    with pytest.raises(TaletuneError, match=f"no space left on the device writing {target}; free some space"):
        write(target)
    _assert_nothing_lost(full_disk, target, b"the previous level")
    storage.write_text(str(full_disk / "small.txt"), "fits")  # the temp file's space is given back


@pytest.mark.parametrize("how", WAYS)
@pytest.mark.parametrize("code, message", [(errno.ENOSPC, "no space left on the device"), (errno.EDQUOT, "the disk quota is used up")])
def test_an_injected_full_disk_is_one_clear_error_and_loses_nothing(how, code, message, tmp_path, request, monkeypatch):
    """The same without root: fsync fails as it does when delayed allocation meets a full disk."""
    write = _writer(how, tmp_path, request)
    folder = tmp_path / "disk"
    folder.mkdir()
    (folder / "done.txt").write_text("finished earlier")
    target = folder / "adapter_model.safetensors"
    target.write_bytes(b"the previous level")

    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TaletuneError, match=f"{message} writing {target}; free some space"):
        write(target)
    _assert_nothing_lost(folder, target, b"the previous level")


def test_a_full_disk_under_a_cli_is_one_line_and_the_rerun_keeps_the_cache(full_disk, mirror, tmp_path):
    """The ingest CLI writing onto the full disk: exit 2, one `error:` line, no traceback;
    the books it cleaned before are in its cache, and a run with room reuses them."""
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("genres:\n  horror: {prompt: Write me a horror story, books: [1952]}\n"
                       "  fairy_tale: {prompt: Write me a fairy tale, books: [7074]}\n")
    (full_disk / "done.txt").write_text("finished earlier")
    (full_disk / "filler.bin").write_bytes(b"\0" * (200 << 10))  # leaves room for under one book
    args = ["components.ingest", "fetch", "--catalog", str(catalog), "--set", f"mirror={mirror}", "--set", "offline=true"]
    failed = run_cli(*args, "--out", str(full_disk / "books"), timeout=120)
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr[-2000:]
    assert len(errors) == 1 and "no space left on the device writing" in errors[0] and "free some space" in errors[0], failed.stderr
    assert (full_disk / "done.txt").read_text() == "finished earlier"
    assert not [p for p in full_disk.rglob(".*.tmp")], "no temp file is left"
    again = run_cli(*args, "--out", str(tmp_path / "books"), timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.loads((tmp_path / "books" / "manifest.json").read_text())
    assert {b["key"]: b["source"] for b in manifest["books"]} == {"1952": "cache", "7074": "cache"}


@pytest.mark.parametrize("how", WAYS)
def test_a_written_file_has_the_mode_a_plain_open_gives(how, tmp_path, request):
    """mkstemp makes 0600 files; a pod of another user reading a shared volume needs the umask's mode."""
    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / "out" / "book.txt"
    _writer(how, tmp_path, request, b"text")(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("where", ["local", "s3"])
def test_etags_change_when_an_object_does(where, tmp_path, request):
    root = request.getfixturevalue("s3") + "/model" if where == "s3" else str(tmp_path / "model")
    storage.write_text(storage.join(root, "config.json"), "{}")
    storage.write_text(storage.join(root, "w/model.safetensors"), "old")
    before = storage.etags(root)
    assert sorted(before) == ["config.json", "w/model.safetensors"]
    storage.write_text(storage.join(root, "w/model.safetensors"), "new weights")
    after = storage.etags(root)
    assert after["config.json"] == before["config.json"] and after["w/model.safetensors"] != before["w/model.safetensors"]


def test_reading_a_folder_or_an_unreadable_file_is_one_clear_error(tmp_path):
    with pytest.raises(TaletuneError, match="is a folder, not a file"):
        storage.read_bytes(str(tmp_path))
    locked = tmp_path / "locked"
    locked.write_text("x")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: a name too long for the OS stands in for an OSError
        with pytest.raises(TaletuneError, match="cannot read"):
            storage.read_bytes(str(tmp_path / ("x" * 300)))
    else:
        with pytest.raises(TaletuneError, match="cannot read .*readable"):
            storage.read_bytes(str(locked))
    with pytest.raises(TaletuneError, match="cannot look for"):
        storage.exists(str(tmp_path / ("y" * 300) / "z"))
