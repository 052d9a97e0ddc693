"""A run prefix in storage belongs to one experiment config.

    claim("s3://taletune/reports/demo", fingerprint, replace=False)

The report is also written under the run's prefix, for people outside the dashboard.
The prefix records the config that wrote there (`experiment.json`); a run of another
config is refused, so one experiment's report never silently replaces another's.
"""

from __future__ import annotations

import json

from components.common import storage
from components.common.errors import TaletuneError

RECORD = "experiment.json"


def claim(prefix: str, fingerprint: dict, replace: bool = False) -> None:
    uri = storage.join(prefix, RECORD)
    if storage.exists(uri):
        old = json.loads(storage.read_text(uri))
        if old != fingerprint and not replace:
            differ = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise TaletuneError(
                f"{prefix} holds the report of another config (it differs in {', '.join(differ)}); give this run a prefix "
                "of its own (--set name=... or --set run_prefix=...), or --set replace_prefix=true to replace it"
            )
        if old == fingerprint:
            return
    storage.write_text(uri, json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
