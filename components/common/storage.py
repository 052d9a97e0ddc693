"""Read and write artifacts by URI: `s3://bucket/key` through boto3, or a local path.

    >>> from components.common import storage
    >>> storage.write_text("/tmp/taletune-demo/hello.txt", "hi")
    >>> storage.read_text("/tmp/taletune-demo/hello.txt")
    'hi'

S3 settings come from the standard variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`); on a cluster a Kubernetes Secret
provides them. Local writes are atomic (temp file, then rename); S3 writes are a single
PUT, or a multipart upload that S3 assembles atomically for large files. Every S3
failure a user can fix (no bucket, bad credentials, unreachable endpoint) becomes one
`TaletuneError` that says so.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from components.common.errors import TaletuneError

MULTIPART_THRESHOLD = 64 * 1024 * 1024


def cache_root() -> str:
    """Where state that outlives a task lives: $TALETUNE_CACHE, else ~/.cache/taletune."""
    return os.environ.get("TALETUNE_CACHE") or str(Path.home() / ".cache" / "taletune")


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = str(uri)[len("s3://") :].partition("/")
    if not bucket:
        raise TaletuneError(f"{uri!r} has no bucket; write it as s3://BUCKET/PREFIX")
    return bucket, key


def join(base: str, *parts: str) -> str:
    """Join URI parts with '/', for S3 prefixes and local paths alike."""
    base = str(base)
    if not is_s3(base):
        return str(Path(base, *parts))
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def _local(uri: str) -> Path:
    uri = str(uri)
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()


# ---------------------------------------------------------------- S3 client


@functools.lru_cache(maxsize=None)
def _client():
    import boto3
    from botocore.config import Config

    # boto3 reads AWS_ENDPOINT_URL itself (since 1.28); path-style addressing is what
    # MinIO, moto and most in-cluster S3 servers expect.
    return boto3.client(
        "s3",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
    )


def reset_client() -> None:
    """Forget the cached client, after the S3 environment variables changed."""
    _client.cache_clear()


def _s3_error(exc: Exception, uri: str) -> TaletuneError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "the default AWS endpoint")
    if isinstance(exc, NoCredentialsError):
        return TaletuneError(
            f"no S3 credentials for {uri}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(on a cluster, from a Kubernetes Secret)"
        )
    if isinstance(exc, EndpointConnectionError):
        return TaletuneError(f"cannot reach the S3 endpoint {endpoint} for {uri}; check AWS_ENDPOINT_URL")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        bucket = split_s3(uri)[0]
        if code in ("NoSuchBucket",) or (code == "404" and exc.operation_name == "HeadBucket"):
            return TaletuneError(f"the S3 bucket {bucket!r} does not exist at {endpoint}; create it or fix the URI {uri}")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied", "InvalidToken"):
            return TaletuneError(
                f"S3 refused the credentials for {uri} ({code}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return TaletuneError(f"S3 error {code or exc} for {uri}")
    return TaletuneError(f"S3 error for {uri}: {exc}")


def _s3_call(uri: str, fn, *args, **kwargs):
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(*args, **kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(exc, uri) from None
    except Boto3Error as exc:
        # boto3's transfers (upload_file) wrap the botocore error that made them fail.
        cause = exc.__cause__ or exc.__context__
        raise _s3_error(cause if isinstance(cause, (ClientError, BotoCoreError)) else exc, uri) from None


# ---------------------------------------------------------------- reading


def exists(uri: str) -> bool:
    if not is_s3(uri):
        return _local(uri).exists()
    from botocore.exceptions import ClientError

    bucket, key = split_s3(uri)
    try:
        _client().head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            check_bucket(uri)  # a missing bucket must not read as a missing object
            return False
        raise _s3_error(exc, uri) from None
    except Exception as exc:  # BotoCoreError: endpoint, credentials
        raise _s3_error(exc, uri) from None


def read_bytes(uri: str) -> bytes:
    if not is_s3(uri):
        try:
            return _local(uri).read_bytes()
        except FileNotFoundError:
            raise TaletuneError(f"{uri} does not exist") from None
    bucket, key = split_s3(uri)
    obj = _s3_call(uri, _client().get_object, Bucket=bucket, Key=key)
    return _s3_call(uri, obj["Body"].read)  # a connection dropped mid-body fails here, not in get_object


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def list_prefix(prefix: str) -> list[str]:
    """Keys below `prefix`, relative to it, sorted; files only."""
    if not is_s3(prefix):
        root = _local(prefix)
        if not root.is_dir():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    bucket, key = split_s3(prefix)
    key = key.rstrip("/") + "/" if key else ""
    paginator = _client().get_paginator("list_objects_v2")
    out: list[str] = []
    pages: Iterator[dict] = _s3_call(prefix, lambda: list(paginator.paginate(Bucket=bucket, Prefix=key)))
    for page in pages:
        out.extend(obj["Key"][len(key) :] for obj in page.get("Contents", []))
    return sorted(out)


def download_prefix(prefix: str, folder: str | Path) -> Path:
    """Copy every file below an S3 (or local) prefix into a local folder; returns it."""
    folder = Path(folder)
    for key in list_prefix(prefix):
        download_file(join(prefix, key), folder / key)
    return folder


def download_file(uri: str, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not is_s3(uri):
        _atomic_copy(_local(uri), path)
        return
    bucket, key = split_s3(uri)
    tmp = path.with_name(f".{path.name}.part")
    _s3_call(uri, _client().download_file, bucket, key, str(tmp))
    os.replace(tmp, path)


# ---------------------------------------------------------------- writing


def write_bytes(uri: str, data: bytes) -> None:
    if not is_s3(uri):
        _atomic_write(_local(uri), data)
        return
    bucket, key = split_s3(uri)
    _s3_call(uri, _client().put_object, Bucket=bucket, Key=key, Body=data)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def upload_file(path: str | Path, uri: str, multipart_threshold: int = MULTIPART_THRESHOLD) -> None:
    """Copy a local file to `uri`; multipart above the threshold, which S3 commits atomically."""
    if not is_s3(uri):
        _atomic_copy(Path(path), _local(uri))
        return
    from boto3.s3.transfer import TransferConfig

    bucket, key = split_s3(uri)
    config = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=max(multipart_threshold, 5 << 20))
    _s3_call(uri, _client().upload_file, str(path), bucket, key, Config=config)


def copy_prefix(src: str, dst: str) -> int:
    """Copy every file below `src` to the same relative key below `dst`; returns the count."""
    keys = list_prefix(src)
    for key in keys:
        if is_s3(src) or is_s3(dst):
            if not is_s3(src):
                upload_file(_local(src) / key, join(dst, key))
            else:
                write_bytes(join(dst, key), read_bytes(join(src, key)))
        else:
            _atomic_copy(_local(src) / key, _local(dst) / key)
    return len(keys)


def check_bucket(uri: str) -> None:
    """Fail with one clear message if the bucket is missing or the credentials are wrong."""
    if is_s3(uri):
        bucket, _ = split_s3(uri)
        _s3_call(uri, _client().head_bucket, Bucket=bucket)


def check_writable(uri: str) -> None:
    """Write and delete a marker below `uri`, so a bad location fails before any work."""
    marker = join(uri, ".taletune-write-check")
    if is_s3(uri):
        check_bucket(uri)
        write_bytes(marker, b"ok")
        bucket, key = split_s3(marker)
        _s3_call(marker, _client().delete_object, Bucket=bucket, Key=key)
        return
    try:
        write_bytes(marker, b"ok")
        _local(marker).unlink()
    except OSError as exc:
        raise TaletuneError(f"cannot write to {uri}: {exc.strerror}; pick a writable folder") from None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(src: Path, dst: Path) -> None:
    if not src.exists():
        raise TaletuneError(f"{src} does not exist")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")  # unique: writers may race
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
