"""Build taletune's images, tagged with the git commit, the way this machine reaches its registries.

    python3 docker/build.py cpu gpu                       # what `make images` runs
    python3 docker/build.py cpu --base taletune/debian-base:bookworm
    python3 docker/build.py cpu gpu --push                # after `docker login` to TALETUNE_REGISTRY

The build runs with `--network host` and gets this machine's pip settings and CA bundle
as BuildKit secrets (read from `pip config list` and the usual certificate variables), so
it reaches PyPI the way pip here does and nothing of it stays in an image. Local folders
that pip reads (find-links, file:// indexes) and this machine's NLTK data are served to
the build over HTTP on 127.0.0.1 for its duration. The image names and tag come from
components/common/image.py, the same that `python -m pipelines compile` writes.
Standard library only.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import http.server
import os
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from components.common.image import GPU_IMAGE, IMAGE, TAG, checkout_tag, require_tag  # noqa: E402

DOCKERFILES = {"cpu": ROOT / "docker" / "Dockerfile", "gpu": ROOT / "docker" / "Dockerfile.gpu"}
NAMES = {"cpu": IMAGE, "gpu": GPU_IMAGE}
DEBIAN_BASE = "taletune/debian-base:bookworm"  # what docker/debian-base.sh makes
# What the evaluation reads (components/evaluate/nltk_data.py); a folder holding them is NLTK data.
NLTK_MARKERS = ("corpora/stopwords", "sentiment/vader_lexicon")


class BuildError(Exception):
    pass


def docker_builder() -> list[str]:
    """A build command with BuildKit: `docker buildx build --load`, or a Docker 20.10-22
    client's own BuildKit (Debian's docker.io), whichever is on PATH first."""
    clients = [c for c in dict.fromkeys([os.environ.get("DOCKER", "docker"), *_all_on_path("docker")]) if shutil.which(c)]
    if not clients:
        raise BuildError("no docker client: install Docker (with BuildKit), e.g. apt-get install docker.io")
    for client in clients:
        if subprocess.run([client, "buildx", "version"], capture_output=True).returncode == 0:
            builder = [client, "buildx", "build", "--load"]
            break
        version = subprocess.run([client, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True).stdout
        major = version.split(".")[0].strip()
        if major.isdigit() and int(major) < 23:  # 23 moved BuildKit into buildx
            builder = [client, "build"]
            break
    else:
        raise BuildError("no Docker client with BuildKit: install docker-buildx (or Debian's docker.io, 20.10)")
    if subprocess.run([builder[0], "info"], capture_output=True).returncode != 0:
        raise BuildError(f"the Docker engine is not running or not reachable ({builder[0]} info failed); start dockerd, "
                         "or join the docker group")
    return builder


def _all_on_path(name: str) -> list[str]:
    return [str(Path(d) / name) for d in os.environ.get("PATH", "").split(os.pathsep) if (Path(d) / name).is_file()]


def pinned_base(dockerfile: Path) -> str:
    return next(line.split("=", 1)[1] for line in dockerfile.read_text().splitlines() if line.startswith("ARG BASE_IMAGE="))


def choose_base(docker: str, dockerfile: Path) -> str | None:
    """None (the Dockerfile's pinned base) where it is here or a registry serves it; else a
    Debian base made from Debian's packages (docker/debian-base.sh, as root)."""
    pinned = pinned_base(dockerfile)
    for check in (["image", "inspect", pinned], ["pull", "--quiet", pinned]):
        if subprocess.run([docker, *check], capture_output=True).returncode == 0:
            return None
    if subprocess.run([docker, "image", "inspect", DEBIAN_BASE], capture_output=True).returncode == 0:
        print(f"cannot pull {pinned}: using {DEBIAN_BASE}, made here earlier", file=sys.stderr, flush=True)
        return DEBIAN_BASE
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise BuildError(f"cannot pull the base image {pinned}; give one with --base (or BASE_IMAGE=), or make one "
                         "from Debian's packages: apt-get install debootstrap && sudo docker/debian-base.sh")
    print(f"cannot pull {pinned}: making a Debian base with docker/debian-base.sh", file=sys.stderr, flush=True)
    if subprocess.run([str(ROOT / "docker" / "debian-base.sh")], env={**os.environ, "DOCKER": docker}).returncode != 0:
        raise BuildError("docker/debian-base.sh failed (its output is above)")
    return DEBIAN_BASE


def pip_settings() -> dict[str, str]:
    """This machine's pip configuration, as `pip config list` shows it (files and PIP_*
    variables; a variable wins over a file, as in pip)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    files, variables = {}, {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.rpartition(".")  # global.cert, :env:.cert
        (variables if section == ":env:" else files)[name] = value.strip().strip("'\"")
    settings = {**files, **variables}
    if "default-timeout" in settings:  # PIP_DEFAULT_TIMEOUT is the option `timeout`
        settings.setdefault("timeout", settings.pop("default-timeout"))
    return settings


class _Folders(http.server.SimpleHTTPRequestHandler):
    """Serves each local folder under /<n>/: read-only, on loopback, nothing outside them."""

    folders: list[Path] = []

    def translate_path(self, path: str) -> str:
        parts = unquote(urlparse(path).path).lstrip("/").split("/", 1)
        if not parts[0].isdigit() or int(parts[0]) >= len(self.folders):
            return "/nonexistent"
        folder = self.folders[int(parts[0])].resolve()
        target = (folder / (parts[1] if len(parts) > 1 else "")).resolve()
        return str(target) if target.is_relative_to(folder) else "/nonexistent"  # no ../ out of the folder

    def log_message(self, *args) -> None:  # the build prints what it fetched
        pass


@contextlib.contextmanager
def serve(folders: list[Path]):
    handler = type("Handler", (_Folders,), {"folders": folders})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def ca_bundle(settings: dict[str, str]) -> str | None:
    """The CA bundle pip here trusts: its `cert`, the usual variables, else the system's."""
    candidates = (settings.get("cert"), os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE"),
                  ssl.get_default_verify_paths().cafile)
    return next((c for c in candidates if c and Path(c).is_file()), None)


def build_secrets(settings: dict[str, str], workdir: Path, base_url: str, folders: list[Path]) -> list[str]:
    """The pip.conf and CA bundle handed to the build (as --secret values); the local
    folders pip reads are appended to `folders` to be served."""
    def reachable(location: str, index: bool) -> str:
        if "://" in location and not location.startswith("file:"):
            return location  # a real index: the build reaches it as pip here does
        path = Path(unquote(urlparse(location).path)) if location.startswith("file:") else Path(location)
        if not path.exists():
            return ""
        # An index's pages may link to files beside it (../../files/...): serve its parent.
        folders.append(path.parent if index else path)
        return f"{base_url}/{len(folders) - 1}/" + (f"{path.name}/" if index else "")

    conf = configparser.ConfigParser()
    conf["global"] = {}
    for key in ("index-url", "extra-index-url", "find-links"):
        values = [v for v in (reachable(x, key != "find-links") for x in settings.get(key, "").split()) if v]
        if values:
            conf["global"][key] = " ".join(values)
    for key in ("timeout", "retries", "trusted-host", "proxy", "no-index"):
        if settings.get(key):
            conf["global"][key] = settings[key]
    # The lock files pin every version, so pip's constraint files have nothing to add.
    secrets = []
    ca = ca_bundle(settings)
    if ca:
        conf["global"]["cert"] = "/run/secrets/ca"
        secrets.append(f"id=ca,src={ca}")
    with open(workdir / "pip.conf", "w") as f:
        conf.write(f)
    return [*secrets, f"id=pipconf,src={workdir / 'pip.conf'}"]


def nltk_folder() -> Path | None:
    """This machine's NLTK data: NLTK_DATA's folders, else where `make prepare` and NLTK put it."""
    candidates = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    candidates += [ROOT / ".venv" / "nltk_data", Path.home() / "nltk_data", Path("/usr/share/nltk_data"), Path("/usr/local/share/nltk_data")]
    return next((c for c in candidates if all(any(c.glob(f"{m}*")) for m in NLTK_MARKERS)), None)


def nltk_tar(workdir: Path) -> Path | None:
    """This machine's NLTK data as one tar, for the CPU image (NLTK's server may be out of reach)."""
    source = nltk_folder()
    if source is None:
        return None
    tar_path = workdir / "nltk" / "nltk_data.tar"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w") as tar:
        for child in sorted(source.iterdir()):
            tar.add(child, arcname=child.name)
    return tar_path


def proxy_args() -> list[str]:
    """The proxy variables, as Docker's predefined build arguments (kept out of the image's history)."""
    names = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
    return [x for n in names if os.environ.get(n) for x in ("--build-arg", f"{n}={os.environ[n]}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 docker/build.py", description=__doc__.split("\n")[0])
    parser.add_argument("kinds", nargs="+", choices=sorted(DOCKERFILES), help="which images")
    parser.add_argument("--base", default=os.environ.get("BASE_IMAGE") or None,
                        help="base image ($BASE_IMAGE; default: the Dockerfile's pinned one, else a Debian base made here)")
    parser.add_argument("--push", action="store_true", help="push after building")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE", help="more build arguments (e.g. VLLM_VERSION=0.11.0)")
    args = parser.parse_args(argv)

    try:
        require_tag()
    except RuntimeError as exc:
        raise BuildError(str(exc)) from None
    if TAG != checkout_tag():
        print(f"note: tag {TAG} is set by TALETUNE_IMAGE_TAG, not taken from the checkout", file=sys.stderr)
    build = docker_builder()
    base = args.base or choose_base(build[0], DOCKERFILES[args.kinds[0]])
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folders: list[Path] = []
        url = stack.enter_context(serve(folders))
        secrets = build_secrets(pip_settings(), Path(tmp), url, folders)
        tar = nltk_tar(Path(tmp))
        if tar is None and "cpu" in args.kinds:
            print("note: no NLTK data here (NLTK_DATA, .venv/nltk_data, ~/nltk_data): the CPU image downloads it from "
                  "NLTK's server; where that is out of reach, point NLTK_DATA at a copy", file=sys.stderr, flush=True)
        if tar:
            folders.append(tar.parent)
            (Path(tmp) / "nltk_data_url").write_text(f"{url}/{len(folders) - 1}/{tar.name}")
            secrets.append(f"id=nltk_data_url,src={Path(tmp) / 'nltk_data_url'}")
        for kind in args.kinds:
            command = [*build, "--network", "host", "-f", str(DOCKERFILES[kind]), "-t", NAMES[kind],
                       "--build-arg", f"GIT_COMMIT={TAG}", "--build-arg", f"VERSION={version}", *proxy_args()]
            command += [x for s in secrets for x in ("--secret", s)]
            if base:
                command += ["--build-arg", f"BASE_IMAGE={base}"]
            for extra in args.build_arg:
                command += ["--build-arg", extra]
            print("+ " + " ".join(command), flush=True)
            env = {**os.environ, "DOCKER_BUILDKIT": "1"}
            if subprocess.run([*command, str(ROOT)], env=env).returncode != 0:
                raise BuildError(f"building the {kind} image failed (the build's output is above)")
            print(f"built {NAMES[kind]}", flush=True)
            if args.push and subprocess.run([build[0], "push", NAMES[kind]]).returncode != 0:
                raise BuildError(f"pushing {NAMES[kind]} failed; log in first: docker login {NAMES[kind].split('/')[0]}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
