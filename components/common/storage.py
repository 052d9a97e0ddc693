"""Read and write artifacts by URI: `s3://bucket/key` through boto3, or a local path.

    >>> from components.common import storage
    >>> storage.write_text("/tmp/taletune-demo/hello.txt", "hi")
    >>> storage.read_text("/tmp/taletune-demo/hello.txt")
    'hi'

S3 settings come from the standard variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`); on a cluster a Kubernetes Secret
provides them; `AWS_MAX_ATTEMPTS` caps the tries of each S3 call (default 5). Local
writes are atomic and durable: a temp file of its own (concurrent writers never share
one), flushed to disk, renamed over the target, then the folder synced, so a crash never
leaves an empty file where a finished one was promised. S3 writes are a single PUT, or a
multipart upload that S3 assembles atomically for large files. Every failure a user can
fix (no bucket, bad credentials, an unreachable or vanished endpoint, a full disk)
becomes one `TaletuneError` that says so; a failed write leaves no temp file and the
previous file at the target untouched.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator

from components.common.errors import TaletuneError

MULTIPART_THRESHOLD = 64 * 1024 * 1024


def cache_root() -> str:
    """Where state that outlives a task lives: $TALETUNE_CACHE, else ~/.cache/taletune."""
    return os.environ.get("TALETUNE_CACHE") or str(Path.home() / ".cache" / "taletune")


def local_root() -> Path:
    """Where local copies live: the cache root, or ~/.cache/taletune when that is on S3
    (models and digests must be on local disk)."""
    root = cache_root()
    return Path.home() / ".cache" / "taletune" if is_s3(root) else Path(root)


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


def _max_attempts() -> int:
    raw = os.environ.get("AWS_MAX_ATTEMPTS") or "5"
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise TaletuneError(f"AWS_MAX_ATTEMPTS is {raw!r}; set it to a whole number of tries, 1 or more")
    return value


@functools.lru_cache(maxsize=None)
def _client():
    import boto3
    from botocore.config import Config

    # boto3 reads AWS_ENDPOINT_URL itself (since 1.28); path-style addressing is what
    # MinIO, moto and most in-cluster S3 servers expect. An explicit `retries` hides
    # AWS_MAX_ATTEMPTS from botocore, so it is read here. A refused or dropped connection
    # is retried with short backoff (under a second for 5 tries), so a dead endpoint
    # fails fast; a silent one waits botocore's 60 s connect and read timeouts per try.
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": _max_attempts(), "mode": "standard"})
    try:
        return boto3.client("s3", config=config)
    except ValueError as exc:  # botocore's "Invalid endpoint: ..." is a plain ValueError
        raise TaletuneError(
            f"AWS_ENDPOINT_URL {os.environ.get('AWS_ENDPOINT_URL')!r} is not a usable S3 endpoint ({exc}); "
            "write it as http://HOST:PORT"
        ) from None


def reset_client() -> None:
    """Forget the cached client, after the S3 environment variables changed."""
    _client.cache_clear()


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL") or "the default AWS endpoint"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _s3_error(exc: BaseException, uri: str) -> TaletuneError:
    from botocore.exceptions import (
        ClientError, EndpointConnectionError, HTTPClientError, IncompleteReadError, NoCredentialsError, ProfileNotFound,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    endpoint = _endpoint()
    if isinstance(exc, ProfileNotFound):
        return TaletuneError(
            f"the AWS profile {os.environ.get('AWS_PROFILE')!r} named by AWS_PROFILE is not in the AWS config files; "
            "unset AWS_PROFILE or add the profile"
        )
    if isinstance(exc, NoCredentialsError):
        return TaletuneError(
            f"no S3 credentials for {uri}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(on a cluster, from a Kubernetes Secret)"
        )
    if isinstance(exc, EndpointConnectionError):
        return TaletuneError(
            f"cannot reach the S3 endpoint {endpoint} for {uri}; check AWS_ENDPOINT_URL and that the S3 server is running"
        )
    if isinstance(exc, (HTTPClientError, IncompleteReadError, BotoConnectionError, ConnectionError, TimeoutError)):
        # The endpoint answered, then went away (closed, reset, timed out) in mid-call.
        return TaletuneError(
            f"lost the connection to the S3 endpoint {endpoint} for {uri} ({_first_line(exc)}); "
            "check that the S3 server is running and reachable (AWS_ENDPOINT_URL), then run the task again"
        )
    if isinstance(exc, ClientError):
        code = _code(exc)
        bucket = split_s3(uri)[0]
        if code in ("NoSuchBucket",) or (code == "404" and exc.operation_name == "HeadBucket"):
            return TaletuneError(f"the S3 bucket {bucket!r} does not exist at {endpoint}; create it or fix the URI {uri}")
        if code in NOT_FOUND:
            return TaletuneError(f"{uri} does not exist at {endpoint}; check the URI, or run the stage that writes it first")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied", "InvalidToken"):
            return TaletuneError(
                f"S3 refused the credentials for {uri} ({code}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return TaletuneError(f"S3 error {code or exc} for {uri}")
    return TaletuneError(f"S3 error for {uri}: {_first_line(exc)}")


NOT_FOUND = ("404", "NoSuchKey", "NotFound")


def _code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _aws_cause(exc: BaseException) -> BaseException | None:
    """The botocore error (or dropped socket) behind `exc`; None if there is none.

    boto3's and s3transfer's transfers wrap the error that made them fail: in
    `last_exception` (RetriesExceededError) or as the exception being handled.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (ClientError, BotoCoreError, ConnectionError, TimeoutError)):
            return current
        seen.add(id(current))
        current = getattr(current, "last_exception", None) or current.__cause__ or current.__context__
    return None


def _from_aws_library(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("boto3", "botocore", "s3transfer", "urllib3")


@contextlib.contextmanager
def _s3_errors(uri: str) -> Iterator[None]:
    """Turn every failure boto3, botocore or s3transfer raises inside into one `TaletuneError`.

    A local OSError (a full disk under a download) passes through unchanged, for the
    atomic write around it to report; so does anything that is not S3's doing (a bug).
    """
    try:
        yield
    except TaletuneError:
        raise
    except Exception as exc:
        local = isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError))
        cause = None if local else _aws_cause(exc)
        if cause is None and (local or not _from_aws_library(exc)):
            raise
        raise _s3_error(cause or exc, uri) from None


def _s3_call(uri: str, fn, *args, **kwargs):
    """Call `fn` (a client method's name, or a callable that talks to S3) under `_s3_errors`.

    A name is looked up on the client inside the guard, so a client that cannot be made
    (an unknown AWS_PROFILE, say) fails with one message too.
    """
    with _s3_errors(uri):
        call = getattr(_client(), fn) if isinstance(fn, str) else fn
        return call(*args, **kwargs)


# ---------------------------------------------------------------- reading


def exists(uri: str) -> bool:
    if not is_s3(uri):
        try:
            return _local(uri).exists()
        except OSError as exc:  # a folder on the way that this user cannot search
            raise TaletuneError(f"cannot look for {uri}: {exc.strerror or exc}; check the permissions of its folders") from None
    from botocore.exceptions import ClientError

    bucket, key = split_s3(uri)
    with _s3_errors(uri):
        try:
            _client().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if _code(exc) not in NOT_FOUND:
                raise
    check_bucket(uri)  # a missing bucket must not read as a missing object
    return False


def read_bytes(uri: str) -> bytes:
    if not is_s3(uri):
        try:
            return _local(uri).read_bytes()
        except FileNotFoundError:
            raise TaletuneError(f"{uri} does not exist") from None
        except IsADirectoryError:
            raise TaletuneError(f"{uri} is a folder, not a file; give the file's path") from None
        except OSError as exc:
            raise TaletuneError(f"cannot read {uri}: {exc.strerror or exc}; check that it is readable for this user") from None
    bucket, key = split_s3(uri)
    obj = _s3_call(uri, "get_object", Bucket=bucket, Key=key)
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
    return sorted(_s3_objects(prefix))


def etags(prefix: str) -> dict[str, str]:
    """{key relative to `prefix`: a tag that changes when the object does}: S3's ETag, or
    for a local file its size and modification time."""
    if not is_s3(prefix):
        root = _local(prefix)
        return {key: f"{(root / key).stat().st_size}-{(root / key).stat().st_mtime_ns}" for key in list_prefix(prefix)}
    return {key: obj["ETag"] for key, obj in sorted(_s3_objects(prefix).items())}


def _s3_objects(prefix: str) -> dict[str, dict]:
    """{key relative to `prefix`: its listing entry} for every object below an S3 prefix."""
    bucket, key = split_s3(prefix)
    key = key.rstrip("/") + "/" if key else ""
    out: dict[str, dict] = {}
    # Pages are fetched lazily, as the loop asks for them: the whole walk is in the guard.
    with _s3_errors(prefix):
        for page in _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            # A key ending in "/" is a console-made "folder", not a file.
            out.update((obj["Key"][len(key) :], obj) for obj in page.get("Contents", []) if not obj["Key"].endswith("/"))
    return out


def download_prefix(prefix: str, folder: str | Path) -> Path:
    """Copy every file below an S3 (or local) prefix into a local folder; returns it."""
    folder = Path(folder)
    for key in list_prefix(prefix):
        download_file(join(prefix, key), folder / key)
    return folder


def download_file(uri: str, path: str | Path) -> None:
    """Copy `uri` to the local `path`, atomically and durably; concurrent downloads of one
    object to one path each write a temp file of their own, and the last rename wins."""
    path = Path(path)
    if not is_s3(uri):
        _atomic_copy(_local(uri), path)
        return
    bucket, key = split_s3(uri)
    with atomic_file(path) as fh:
        _s3_call(uri, "download_fileobj", bucket, key, fh)


# ---------------------------------------------------------------- writing


def write_bytes(uri: str, data: bytes) -> None:
    if not is_s3(uri):
        _atomic_write(_local(uri), data)
        return
    bucket, key = split_s3(uri)
    _s3_call(uri, "put_object", Bucket=bucket, Key=key, Body=data)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def upload_file(path: str | Path, uri: str, multipart_threshold: int = MULTIPART_THRESHOLD) -> None:
    """Copy a local file to `uri`; multipart above the threshold, which S3 commits atomically."""
    if not is_s3(uri):
        _atomic_copy(Path(path), _local(uri))
        return
    if not Path(path).is_file():  # else s3transfer's own FileNotFoundError, a traceback
        raise TaletuneError(f"{path} does not exist; nothing to upload to {uri}")
    from boto3.s3.transfer import TransferConfig

    bucket, key = split_s3(uri)
    config = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=max(multipart_threshold, 5 << 20))
    _s3_call(uri, "upload_file", str(path), bucket, key, Config=config)


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


def delete(uri: str) -> None:
    """Remove one object or file; absent is fine."""
    if not is_s3(uri):
        _local(uri).unlink(missing_ok=True)
        return
    bucket, key = split_s3(uri)
    _s3_call(uri, "delete_object", Bucket=bucket, Key=key)


def check_bucket(uri: str) -> None:
    """Fail with one clear message if the bucket is missing or the credentials are wrong."""
    if is_s3(uri):
        bucket, _ = split_s3(uri)
        _s3_call(uri, "head_bucket", Bucket=bucket)


def check_writable(uri: str) -> None:
    """Write and delete a marker below `uri`, so a bad location fails before any work."""
    marker = join(uri, ".taletune-write-check")
    if is_s3(uri):
        check_bucket(uri)
        write_bytes(marker, b"ok")
        delete(marker)
        return
    try:
        write_bytes(marker, b"ok")
        _local(marker).unlink()
    except OSError as exc:
        raise TaletuneError(f"cannot write to {uri}: {exc.strerror}; pick a writable folder") from None


# ---------------------------------------------------------------- local atomic writes

# A full disk, or a full quota: the user frees space or writes elsewhere.
_NO_SPACE = {errno.ENOSPC: "no space left on the device", getattr(errno, "EDQUOT", errno.ENOSPC): "the disk quota is used up"}


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask


# mkstemp makes its file 0600; a finished file gets the mode a plain open() would give it.
_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file to fill; on success it becomes `path`, durably, else it vanishes.

    The temp file is unique (mkstemp in the target folder: concurrent writers of one path
    never share it, and the rename stays on one filesystem). Its data is fsynced before
    the rename, and the folder after it: otherwise a crash can leave an empty or short
    file under the final name, beside a record that says the work is done. On any
    failure the temp file is removed and the previous file at `path` is untouched.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _FILE_MODE)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise TaletuneError(
                f"{_NO_SPACE[exc.errno]} writing {path}; free some space there, or point the output "
                "(or TALETUNE_CACHE, for caches) at a disk with room, then run the task again"
            ) from None
        raise
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable. Best effort: some filesystems cannot open or
    sync a folder, and the file's own data is on disk already."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_file(path) as fh:
        fh.write(data)


def _atomic_copy(src: Path, dst: Path) -> None:
    if not src.exists():
        raise TaletuneError(f"{src} does not exist")
    with atomic_file(dst) as fh, open(src, "rb") as source:
        shutil.copyfileobj(source, fh, 1 << 20)
