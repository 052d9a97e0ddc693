"""The dataset stage as a KFP lightweight Python component (runs in the project image)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Output

from components.common.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def make_dataset(books: Input[Dataset], catalog: dict, config: dict, dataset: Output[Dataset], datasheet: Output[Markdown]):
    """Cut the cleaned books into labelled passages and split them without leakage."""
    import shutil

    from components.common.config import from_parameter
    from components.common.cli import component_run
    from components.dataset.config import DatasetConfig
    from components.dataset.stage import run_dataset
    from components.common.catalog import load_catalog

    with component_run():
        stats = run_dataset(books.path, from_parameter(DatasetConfig, config, "dataset config"), dataset.path, load_catalog(catalog))
    shutil.copyfile(f"{dataset.path}/datasheet.md", datasheet.path)
    dataset.metadata["rows"] = stats["rows"]
    dataset.metadata["total"] = stats["total"]
    dataset.metadata["duplicates"] = stats["duplicates"]
