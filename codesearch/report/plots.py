"""The figures of a report, per group: MRR bars, the gap and epoch time per epoch, MRR against
training time (matplotlib's object API: no pyplot state)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from codesearch.report.summary import by_epoch


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def plot_names(group: str) -> dict[str, str]:
    slug = _slug(group)
    return {
        "mrr": f"mrr_{slug}.png",
        "gap": f"gap_{slug}.png",
        "epoch_time": f"epoch_time_{slug}.png",
        "mrr_time": f"mrr_time_{slug}.png",
    }


def _figure(title: str, xlabel: str, ylabel: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    fig = Figure(figsize=(7, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def _mrr_bars(group: dict, title: str, path: Path) -> None:
    """MRR per language and on average, one bar per arm, std over seeds as error bars."""
    fig, ax = _figure(title, "", "MRR (points)")
    labels = [*group["languages"], "average"]
    width = 0.8 / max(len(group["samplers"]), 1)
    for i, sampler in enumerate(group["samplers"]):
        cells = [group["mrr"][lang][sampler] for lang in group["languages"]]
        cells.append(group["average"][sampler])
        heights = [np.nan if c["mean"] is None else c["mean"] for c in cells]
        errors = [c["std"] or 0.0 for c in cells]
        ax.bar(
            np.arange(len(labels)) + i * width,
            heights,
            width,
            yerr=errors,
            capsize=3,
            label=sampler,
        )
    ax.set_xticks(np.arange(len(labels)) + width * (len(group["samplers"]) - 1) / 2, labels)
    ax.legend()
    fig.savefig(path, dpi=100)


def _line_plot(series: dict, key: str, title: str, ylabel: str, path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure(title, "epoch", ylabel)
    for sampler, entry in series.items():
        points = {e: v for e, v in by_epoch(entry, key).items() if v is not None}
        if points:
            ax.plot(list(points), list(points.values()), marker="o", label=sampler)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.lines:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "nothing logged", ha="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100)


def _mrr_time_plot(group: dict, title: str, path: Path) -> None:
    """Average MRR (mean ± std over seeds) against the arm's measured training time (total
    epoch seconds summed over languages, mean over seeds): methods at equal cost line up."""
    fig, ax = _figure(title, "training seconds (epochs, summed over languages)", "MRR (points)")
    for sampler in group["samplers"]:
        seconds = group["epoch_time"].get(sampler, {}).get("total_seconds")
        mrr = group["average"][sampler]
        if seconds is None or mrr["mean"] is None:
            continue
        ax.errorbar(seconds, mrr["mean"], yerr=mrr["std"] or 0.0, fmt="o", capsize=3)
        ax.annotate(sampler, (seconds, mrr["mean"]), textcoords="offset points", xytext=(4, 4))
    if not ax.lines:
        ax.text(0.5, 0.5, "no timed arm", ha="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100)


def write_plots(summary: dict, out_dir: str | Path) -> list[Path]:
    """Per group: MRR bars with std error bars, gap per epoch, epoch time per epoch, MRR
    against training time."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for group, g in summary["groups"].items():
        names = {k: out_dir / v for k, v in plot_names(group).items()}
        _mrr_bars(g, f"{group}: MRR@{summary['mrr_cutoff']} over seeds", names["mrr"])
        _line_plot(
            g["gap"],
            "diag_gap",
            f"{group}: L^Global - L^Train per epoch",
            "gap (mean over seeds and languages)",
            names["gap"],
        )
        _line_plot(
            g["epoch_time"],
            "seconds",
            f"{group}: epoch time",
            "seconds (summed over languages)",
            names["epoch_time"],
        )
        _mrr_time_plot(g, f"{group}: MRR against training time", names["mrr_time"])
        written += names.values()
    return written
