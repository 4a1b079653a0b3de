"""The sampler comparison report: ``results/<profile>/`` -> report.md, results.json, plots/.

``python -m codesearch.report RESULTS_DIR`` reads the layout ``make reproduce`` writes
(grid.json, cells/<cell id>.json from ``codesearch evaluate --out``, and each cell's training
run directory) and summarises it per group:

- MRR per language and sampler in points (x100), recomputed from each query's gold rank with
  the codebase protocol's cutoff (reciprocal rank ``1/rank`` if ``rank <= 1000`` else 0,
  i.e. MRR@1000; ``codesearch.metrics.mrr``), as mean and sample standard deviation
  (ddof=1) over seeds; the std is null with one seed.
- every arm other than the baselines (random, hardneg) against each baseline, per language
  and averaged over languages (``codesearch.significance``). Primary: the paired t interval
  over per-seed differences (seed k of one arm against seed k of the other, which share their
  training subset and initialisation), its p-value Holm-adjusted across the group's languages,
  the exact sign-flip p, the smallest effect the design could detect, and "resolved" only
  when the t interval excludes 0. Secondary, test-set noise only: Efron's percentile
  bootstrap of the mean difference paired over queries (each query's reciprocal rank first
  averaged over the arm's seeds).
- epoch time and sampler time per epoch (``metrics.jsonl`` epoch rows), the overhead ratio
  over random, the L^Global - L^Train gap per epoch without and with the loss's false-negative
  mask, and the anchors that mask leaves without negatives (``diag_*``).

A group with ``zero_shot: true`` shows its base model's untrained evaluation as a "zero-shot"
column beside the arms, outside every comparison.

Protocol sts (STS-B sentence pairs, ``codesearch.sts_eval``): the metric is Spearman's rho x 100
of cosine against the gold score per language and per genre (``sts_summary``), with the same
statistics over seeds (Holm across languages, and across a language's genres for the genre
rows); the secondary interval is Efron's bootstrap over test pairs, each resample recomputing
every seed's Spearman of both arms (``significance.paired_spearman_bootstrap``; it reads the
gold scores from the data directory, and is left out, saying why, without it); the validation
score per epoch is the trainer's ``valid_spearman``.

``load`` reads the directory, ``summary`` (and ``sts_summary``) computes results.json,
``tables`` (``sts_tables``), ``words`` and ``plots`` render it; this module puts report.md
together.
"""

from __future__ import annotations

from pathlib import Path

from codesearch.data.prepared import write_json_atomic
from codesearch.report.load import grid_path_candidates, load_grid, read_epoch_rows
from codesearch.report.plots import plot_names, write_plots
from codesearch.report.sts_tables import spearman_table, sts_comparison_table, validation_table
from codesearch.report.summary import MRR_CUTOFF, comparisons, describe_machine, summarize_grid
from codesearch.report.tables import comparison_table, epoch_tables, machine_lines, mrr_table, num
from codesearch.report.words import describe_model, reading

__all__ = [
    "MRR_CUTOFF",
    "comparisons",
    "describe_machine",
    "describe_model",
    "format_report",
    "grid_path_candidates",
    "load_grid",
    "plot_names",
    "read_epoch_rows",
    "summarize_grid",
    "write_plots",
    "write_report",
]


def _group_section(
    name: str, g: dict, metric: str, confidence: float, images: bool = True
) -> list[str]:
    """One group: its tables, its plots and the facts read off them."""
    lines = [f"## Group `{name}` ({describe_model(g)})", ""]
    sts = g.get("metric") == "spearman"
    if sts:
        lines += spearman_table(g, metric)
        lines += sts_comparison_table(g, confidence)
        lines += validation_table(g)
    else:
        lines += mrr_table(g, metric)
        lines += comparison_table(g, confidence)
    lines += epoch_tables(g)
    if images:
        names = plot_names(name, g)
        score, key = ("Spearman", "spearman") if sts else ("MRR", "mrr")
        lines += [
            f"![{score}](plots/{names[key]}) ![gap](plots/{names['gap']}) "
            f"![epoch time](plots/{names['epoch_time']}) "
            f"![{score} against time](plots/{names[f'{key}_time']})"
            + (f" ![validation](plots/{names['valid']})" if sts else ""),
            "",
        ]
    return lines + [
        "**How to read this.** " + " ".join(reading(g, confidence) or ["No comparisons."]),
        "",
    ]


def format_report(summary: dict, images: bool = True) -> str:
    """report.md: per group the MRR table (sts: Spearman per language and genre, with the
    zero-shot reference), the comparisons, epoch time, gap, plots and a paragraph of facts
    read off them; then the missing cells and logs. ``images=False``
    leaves out the plot links (relative to the results directory), e.g. in a notebook."""
    if summary.get("metric") == "spearman":
        metric = (
            "Spearman's rho of the cosine similarity against the gold score (sts protocol, "
            f"{summary.get('split', 'test')} split)"
        )
    else:
        metric = f"MRR@{summary['mrr_cutoff']} ({summary['protocol']} protocol)"
    wall = summary.get("wall_seconds")
    lines = [
        f"# Sampler comparison: profile `{summary['profile']}`",
        "",
        *([summary["description"], ""] if summary.get("description") else []),
        f"- data: `{summary['data']}` (data_hash `{summary['data_hash']}`)",
        f"- metric: {metric}, in points (x100)",
        f"- cells: {len(summary['cells']['done'])} done, "
        f"{len(summary['cells']['missing'])} missing; wall time "
        f"{num(wall / 60 if wall is not None else None, 1)} min",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in summary["packages"].items()),
        *machine_lines(
            summary.get("machines", {}), {"training": "trained", "evaluation": "evaluated"}
        ),
        "",
    ]
    for name, g in summary["groups"].items():
        lines += _group_section(name, g, metric, summary["bootstrap"]["confidence"], images)
    if summary["cells"]["missing"]:
        lines += [
            "## Missing cells",
            "",
            *(f"- `{c['id']}`: {c['status']}" for c in summary["cells"]["missing"]),
            "",
        ]
    if summary["missing_metrics"]:
        lines += [
            "## Missing training logs (no time or gap for these)",
            "",
            *(f"- `{p}`" for p in summary["missing_metrics"]),
            "",
        ]
    return "\n".join(lines)


def write_report(results_dir: str | Path) -> dict:
    """Load, summarise, write results.json (atomically), plots/ and report.md."""
    results_dir = Path(results_dir)
    summary = summarize_grid(load_grid(results_dir), results_dir)
    write_json_atomic(results_dir / "results.json", summary)
    write_plots(summary, results_dir / "plots")
    tmp = results_dir / "report.md.tmp"
    tmp.write_text(format_report(summary), encoding="utf-8")
    tmp.replace(results_dir / "report.md")
    return summary
