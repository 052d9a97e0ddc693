"""The one place that names the container image every component runs in.

`make images` builds and tags it; `TALETUNE_IMAGE` overrides it at compile time, so a
pipeline compiled for a cluster points at the registry the cluster pulls from.
"""

import os

VERSION = "0.1.0"
IMAGE = os.environ.get("TALETUNE_IMAGE", f"ghcr.io/taletune/taletune-python:{VERSION}")
