"""The figures of a report, per group: MRR bars (sts: Spearman per language and genre, with the
zero-shot reference), the gap and epoch time per epoch, MRR (Spearman) against training time,
and for sts the validation score per epoch (matplotlib's object API: no pyplot state)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from codesearch.report.summary import by_epoch


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def plot_names(group: str, summary: dict | None = None) -> dict[str, str]:
    """The figure files of a group; ``summary`` (its results.json entry) says whether it is
    an sts group: Spearman in place of MRR, and the validation curve."""
    slug = _slug(group)
    if summary is not None and summary.get("metric") == "spearman":
        return {
            "spearman": f"spearman_{slug}.png",
            "gap": f"gap_{slug}.png",
            "epoch_time": f"epoch_time_{slug}.png",
            "spearman_time": f"spearman_time_{slug}.png",
            "valid": f"valid_{slug}.png",
        }
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


def _spearman_bars(group: dict, title: str, path: Path) -> None:
    """Spearman x 100 per language and genre, one bar per arm (std over seeds as error bars)
    and the zero-shot reference as a hatched bar."""
    fig, ax = _figure(title, "", "Spearman x 100")
    rows = [
        (label, lang, genre)
        for lang in group["languages"]
        for label, genre in [(lang, None), *((g, g) for g in group["genres"][lang])]
    ]
    zero = group.get("zero_shot")
    series = [*(["zero-shot"] if zero else []), *group["samplers"]]
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        if name == "zero-shot":
            heights = [
                zero["spearman"][lang] if genre is None else zero["genres"][lang].get(genre, np.nan)
                for _, lang, genre in rows
            ]
            errors = [0.0] * len(rows)
        else:
            cells = [
                group["spearman"][lang][name]
                if genre is None
                else group["genres"][lang][genre][name]
                for _, lang, genre in rows
            ]
            heights = [np.nan if c["mean"] is None else c["mean"] for c in cells]
            errors = [c["std"] or 0.0 for c in cells]
        ax.bar(
            np.arange(len(rows)) + i * width,
            heights,
            width,
            yerr=errors,
            capsize=3,
            label=name,
            hatch="//" if name == "zero-shot" else None,
        )
    ax.set_xticks(np.arange(len(rows)) + width * (len(series) - 1) / 2, [r[0] for r in rows])
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


def _mrr_time_plot(group: dict, title: str, path: Path, ylabel: str = "MRR (points)") -> None:
    """Average MRR (sts: Spearman; mean ± std over seeds) against the arm's measured training
    time (total epoch seconds summed over languages, mean over seeds): methods at equal cost
    line up; a zero-shot reference sits at 0 seconds."""
    fig, ax = _figure(title, "training seconds (epochs, summed over languages)", ylabel)
    zero = group.get("zero_shot")
    if zero:
        ax.plot([0.0], [zero["average"]], "s", color="grey")
        ax.annotate("zero-shot", (0.0, zero["average"]), textcoords="offset points", xytext=(4, 4))
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
        names = {k: out_dir / v for k, v in plot_names(group, g).items()}
        if g.get("metric") == "spearman":
            _spearman_plots(group, g, names)
        else:
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
        if g.get("metric") != "spearman":
            _mrr_time_plot(g, f"{group}: MRR against training time", names["mrr_time"])
        written += names.values()
    return written


def _spearman_plots(group: str, g: dict, names: dict[str, Path]) -> None:
    """An sts group's own figures: Spearman bars, Spearman against time, validation curve."""
    _spearman_bars(g, f"{group}: Spearman x 100 over seeds", names["spearman"])
    _mrr_time_plot(
        g, f"{group}: Spearman against training time", names["spearman_time"], "Spearman x 100"
    )
    _line_plot(
        g["valid"],
        "valid",
        f"{group}: validation score per epoch",
        "validation x 100 (mean over seeds)",
        names["valid"],
    )
