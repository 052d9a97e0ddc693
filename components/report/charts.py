"""Charts for the report: matplotlib (Agg) figures written as inline SVG strings.

    svg = by_level([Panel("horror", {"smollm2-135m": [(0, 0.3, (0.2, 0.4)), (3, 0.5, None)]}, reference=0.4)],
                   ylabel="positive endings", share=True)

Levels run along the x axis; each model is a coloured series, nudged sideways so that
models sit side by side at a level; 95% intervals are error bars; the training data is
a dashed horizontal line. Text stays text in the SVG (no embedded fonts), and the
page needs nothing else to draw it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

Point = tuple[int, float, "tuple[float, float] | None"]  # level, value, 95% interval


@dataclass
class Panel:
    title: str
    series: dict[str, list[Point]]  # model -> its points
    reference: float | None = None  # the training data's value
    reference_label: str = "training data"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: render to files only
    import matplotlib.pyplot as plt

    return plt


def to_svg(fig, name: str) -> str:
    """The figure as an `<svg>` element, ids unique to `name` (several charts share one page)."""
    import matplotlib

    plt = _pyplot()
    buffer = io.StringIO()
    # The salt makes the ids deterministic and distinct per chart; no metadata, no date.
    with matplotlib.rc_context({"svg.hashsalt": name, "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE: the page is HTML
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    return re.sub(r'<svg ', f'<svg role="img" aria-label="{name}" ', svg, count=1)


def colours(models: list[str]) -> dict[str, str]:
    """One colour per model, the same in every chart."""
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    return {m: palette[i % len(palette)] for i, m in enumerate(models)}


def by_level(panels: list[Panel], ylabel: str, name: str, share: bool = False, models: list[str] | None = None) -> str:
    plt = _pyplot()
    from matplotlib.ticker import PercentFormatter

    models = models or list(dict.fromkeys(m for p in panels for m in p.series))
    colour = colours(models)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.2, 3.2), squeeze=False, sharey=share,
                             layout="constrained")  # one layout pass, done while saving
    width = 0.6 / max(1, len(models))
    for ax, panel in zip(axes[0], panels):
        levels = sorted({level for points in panel.series.values() for level, _, _ in points})
        for i, model in enumerate(models):
            points = sorted(panel.series.get(model, []))
            if not points:
                continue
            x = [level + (i - (len(models) - 1) / 2) * width for level, _, _ in points]
            y = [value for _, value, _ in points]
            low = [value - ci[0] if ci else 0 for _, value, ci in points]
            high = [ci[1] - value if ci else 0 for _, value, ci in points]
            ax.errorbar(x, y, yerr=[low, high], fmt="o-", color=colour[model], capsize=3, lw=1.2, ms=5, label=model)
        if panel.reference is not None:
            ax.axhline(panel.reference, ls="--", color="#444", lw=1, label=panel.reference_label)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xticks(levels or [0], [f"level {lv}" for lv in levels] or ["–"], fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        if share:
            ax.set_ylim(-0.03, 1.03)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes[0][0].set_ylabel(ylabel, fontsize=9)
    handles: dict = {}  # one legend for all panels
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside upper center", ncol=min(len(handles), 5), fontsize=8,
                   frameon=False)
    return to_svg(fig, name)


def losses(rows: dict[str, list[tuple[int, float | None, float | None]]], name: str) -> str:
    """Train (solid) and validation (dashed) loss by level, one colour per model."""
    plt = _pyplot()
    colour = colours(list(rows))
    fig, ax = plt.subplots(figsize=(5.5, 3.2), layout="constrained")
    for model, points in rows.items():
        points = sorted(points)
        for index, style, kind in ((1, "o-", "train"), (2, "s--", "validation")):
            xy = [(p[0], p[index]) for p in points if p[index] is not None]
            if xy:
                ax.plot(*zip(*xy), style, color=colour[model], lw=1.2, ms=5, label=f"{model}, {kind}")
    levels = sorted({p[0] for points in rows.values() for p in points})
    ax.set_xticks(levels or [0], [f"level {lv}" for lv in levels] or ["–"], fontsize=8)
    ax.set_ylabel("loss (nats per token)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=8, frameon=False)
    return to_svg(fig, name)
