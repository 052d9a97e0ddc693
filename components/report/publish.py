"""The report task's work: claim the run prefix, render the report (or reuse it), publish it.

Kept apart from component.py so the task's generated source stays a few lines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from components.common import storage

log = logging.getLogger(__name__)

FILES = ("report.html", "report.md", "findings.json")


def publish(evaluations: list[str], config: dict, out: str, prefix: str, experiment: str, replace: bool,
            html_path: str, markdown_path: str) -> dict:
    from components.common.config import from_parameter
    from components.common.provenance import code_version, folder_digest, write_run_record
    from components.common.runprefix import claim
    from components.report.config import ReportConfig
    from components.report.stage import run_report

    settings = from_parameter(ReportConfig, config, "report config")
    claim(prefix, json.loads(experiment), replace)  # the config travels as JSON: KFP constants cannot hold null
    blob = json.dumps([[folder_digest(e) for e in evaluations], settings.model_dump(), code_version("components.report")], sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    Path(out).mkdir(parents=True, exist_ok=True)
    reused = storage.exists(storage.join(prefix, "report.key")) and storage.read_text(storage.join(prefix, "report.key")).strip() == key
    if reused and all(storage.exists(storage.join(prefix, f)) for f in FILES):
        log.info("reused: the report of these evaluations is at %s already; nothing rendered", prefix)
        for name in FILES:
            storage.download_file(storage.join(prefix, name), Path(out) / name)
    else:
        run_report(evaluations, out, settings)
        reused = False
        for name in FILES:
            storage.write_bytes(storage.join(prefix, name), (Path(out) / name).read_bytes())
        storage.write_text(storage.join(prefix, "report.key"), key + "\n")  # last: the files above are whole
    write_run_record(out, reused=reused, prefix=prefix)
    shutil.copyfile(Path(out) / "report.html", html_path)
    shutil.copyfile(Path(out) / "report.md", markdown_path)
    return {"sets": len(evaluations), "prefix": prefix, "reused": reused}
