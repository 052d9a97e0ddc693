"""The report stage: every evaluation of a run on one self-contained HTML page."""
