"""Report on a run's evaluations: one self-contained HTML page, with findings, charts and stories.

    python -m components.report runs/.../evaluate/evaluation runs/.../evaluate-5/evaluation --out report/ --set samples_per_set=5

Each argument is one evaluate task's output folder (it holds `metrics.json`, and
`stories.jsonl` beside it). Writes `report.html` (open it in a browser: it fetches
nothing), `report.md` and `findings.json` into `--out`.
"""

from __future__ import annotations

import argparse

from components.common.cli import add_config_args, setup_logging
from components.common.config import load_config
from components.common.errors import main_guard


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m components.report", description=__doc__.split("\n")[0])
    parser.add_argument("evaluations", nargs="+", metavar="EVAL_DIR", help="evaluate output folders (each holds metrics.json)")
    parser.add_argument("--out", required=True, help="output folder")
    add_config_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    from components.report.config import ReportConfig
    from components.report.stage import run_report

    result = run_report(args.evaluations, args.out, load_config(ReportConfig, args.config, args.overrides))
    print(f"{result['sets']} sets, models {', '.join(result['models']) or 'none'}, levels {result['levels']}, "
          f"{result['findings_count']} findings")
    print(f"report: {result['html']}")


if __name__ == "__main__":
    main()
