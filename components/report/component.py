"""The report stage as a KFP lightweight Python component, with one input per story set.

KFP v2 gathers a list of artifacts into one task only from a `dsl.ParallelFor` loop,
but each model's tasks here have their own GPU settings and the models are known when
the pipeline is compiled. So `report_component(n)` builds a component with `n` named
`Dataset` inputs (set_00, set_01, ...): its source is generated, registered with
`linecache` so KFP can read it like any function's, and embedded in the pipeline spec
like every lightweight component.
"""

import linecache

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output

from components.common.image import IMAGE

SOURCE = '''
def report({inputs}, config: dict, prefix: str, experiment: str, replace: bool,
           html: Output[HTML], summary: Output[Markdown], report: Output[Artifact]):
    """One HTML report comparing every model and level with the training data, also
    written under the run's prefix in storage for people outside the dashboard."""
    from components.common.cli import component_run
    from components.report.publish import publish

    with component_run():
        result = publish([{paths}], config, report.path, prefix, experiment, replace, html.path, summary.path)
    report.metadata.update(result)
'''


def report_component(n_sets: int):
    """The report component for a pipeline with `n_sets` evaluated sets."""
    names = [f"set_{i:02d}" for i in range(n_sets)]
    source = SOURCE.format(inputs=", ".join(f"{n}: Input[Dataset]" for n in names), paths=", ".join(f"{n}.path" for n in names))
    filename = f"<taletune report component, {n_sets} sets>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"Input": Input, "Output": Output, "Dataset": Dataset, "HTML": HTML, "Markdown": Markdown, "Artifact": Artifact}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own template, no user text in it
    return dsl.component(base_image=IMAGE, install_kfp_package=False)(namespace["report"])
