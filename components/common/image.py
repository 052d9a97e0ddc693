"""The one place that names the container images the components run in.

`make images` builds and tags both; `TALETUNE_IMAGE` and `TALETUNE_GPU_IMAGE` override
them at compile time, so a pipeline compiled for a cluster points at the registry the
cluster pulls from. The GPU image adds CUDA builds of torch and bitsandbytes.
"""

import os

VERSION = "0.1.0"
IMAGE = os.environ.get("TALETUNE_IMAGE", f"ghcr.io/taletune/taletune-python:{VERSION}")
GPU_IMAGE = os.environ.get("TALETUNE_GPU_IMAGE", f"ghcr.io/taletune/taletune-python-gpu:{VERSION}")
