"""The storage layer on local paths and on S3 (moto's server on 127.0.0.1, over HTTP)."""

import boto3
import pytest

from components.common import storage
from components.common.errors import TaletuneError
from tests.conftest import free_port, moto_server


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
