"""The ingest stage as a KFP lightweight Python component (runs in the project image)."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.common.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(catalog: dict, config: dict, books: Output[Dataset]):
    """Fetch the catalog's books (cache, mirror or gutenberg.org) and strip all but the story."""
    from components.common.config import from_parameter
    from components.common.cli import component_run
    from components.common.catalog import load_catalog
    from components.ingest.config import IngestConfig
    from components.ingest.stage import run_ingest

    with component_run():
        manifest = run_ingest(load_catalog(catalog), from_parameter(IngestConfig, config, "ingest config"), books.path)
    books.metadata["books"] = len(manifest["books"])
    books.metadata["removed"] = {b["key"]: b["removed"] for b in manifest["books"]}
    books.metadata["warnings"] = {b["key"]: b["warnings"] for b in manifest["books"] if b["warnings"]}
