#!/usr/bin/env bash
# A Debian base image made from Debian's own packages, for machines that reach a Debian
# mirror but no image registry (the Dockerfiles' default base is pulled by digest).
#
#   sudo docker/debian-base.sh                 # -> taletune/debian-base:bookworm
#   make images BASE_IMAGE=taletune/debian-base:bookworm
#
# It holds what the Dockerfiles need of a base: python3 (3.11 on bookworm) with venv,
# and CA certificates. Needs root (debootstrap) and a running Docker engine.
set -euo pipefail

SUITE=${SUITE:-bookworm}
TAG=${TAG:-taletune/debian-base:$SUITE}
DOCKER=${DOCKER:-docker}
# The mirror apt already uses on this machine, unless one is given.
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1 && [ -z "${REBUILD:-}" ]; then
    echo "$TAG exists (REBUILD=1 to make it again)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "error: needs debootstrap: apt-get install debootstrap" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "error: debootstrap needs root" >&2; exit 2; }

root=$(mktemp -d /tmp/taletune-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$root" "$MIRROR"
# A base image carries no package lists, logs or caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* "$root"/tmp/*
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
tar --numeric-owner -C "$root" -c . | "$DOCKER" import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.opencontainers.image.created=$created org.opencontainers.image.description=debootstrap-$SUITE-minbase" \
    - "$TAG"
echo "made $TAG from $MIRROR"
