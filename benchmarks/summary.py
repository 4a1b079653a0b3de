"""Summary of the benchmarks: reads every ``results/bench/*.json`` that exists and writes
``results/bench/summary.md``: the benchmark targets (met or not), then one table per benchmark.

Known reports: ``samplers`` (bench_samplers.py), ``epoch_overhead`` (bench_epoch.py),
``train_throughput`` (bench_train.py), ``cpu_speedups`` (bench_cpu_speedups.py) and the ranking
report (bench_ranking.py); any other JSON
in the folder is listed as not summarised.

    PYTHONPATH=. python benchmarks/summary.py [--dir results/bench] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_samplers import METHODS, extrapolate  # noqa: E402

KNN_TARGET_N, KNN_TARGET_SECONDS, KNN_TARGET_BYTES = 1_000_000, 300.0, 8e9
EPOCH_TARGET, TRAIN_TARGET, RANKING_TARGET = 1.05, 1.0, 3.0


def kind(report: dict) -> str | None:
    if report.get("benchmark") in (
        "samplers",
        "epoch_overhead",
        "train_throughput",
        "cpu_speedups",
    ):
        return report["benchmark"]
    if "speedup" in report and "sentence_transformers" in report:
        return "ranking"
    return None


def _load(report: dict) -> str:
    load = report.get("load_average")
    if isinstance(load, dict) and load.get("before"):
        return (
            f"load average (1 min) before {load['before'][0]:.2f}, after "
            f"{load.get('after', [float('nan')])[0]:.2f}"
        )
    return "load average not recorded"


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _seconds(x: float) -> str:
    return f"{x:,.0f} s" if x >= 100 else f"{x:.3g} s"


def _mark(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "**missed**")


# --- one section per benchmark --------------------------------------------------------------


def samplers_section(name: str, report: dict) -> tuple[list[str], list[list]]:
    lines = [
        f"## Sampler cost against N (`{name}`)",
        "",
        f"{report['machine']['threads']} threads; {_load(report)}; "
        f"{report['wall_seconds'] / 60:.1f} min in all. Each cell: seconds of one epoch's "
        "assignment (peak RSS of the child in MiB, embeddings included) and the gap "
        "L^Global - L^Train it leaves (scale 20). *Italic*: skipped, extrapolated from "
        "the fitted exponent; a fit over few small sizes, where fixed costs still weigh, "
        "can put the exponent of a quadratic method well below 2, so read these as lower "
        "bounds.",
        "",
    ]
    targets = []
    runs, fits = report["runs"], report.get("fits", {})
    for dataset in sorted({r["dataset"] for r in runs}):
        methods = [
            m for m in METHODS if any(r["method"] == m and r["dataset"] == dataset for r in runs)
        ]
        sizes = sorted({r["n"] for r in runs if r["dataset"] == dataset})
        lines += [
            f"### {dataset}",
            "",
            _row(["N", *methods, "gap over"]),
            _row(["---:"] * (1 + len(methods)) + ["---"]),
        ]
        for n in sizes:
            cells = [f"{n:,}"]
            for method in methods:
                run = next(
                    (
                        r
                        for r in runs
                        if r["dataset"] == dataset and r["method"] == method and r["n"] == n
                    ),
                    None,
                )
                fit = fits.get(dataset, {}).get(method)
                if run is None:
                    cells.append("")
                elif "seconds" not in run:
                    cells.append(f"*~{_seconds(extrapolate(fit, n))}*" if fit else "skipped")
                else:
                    gap = f", gap {run['gap']:.4f}" if "gap" in run else ""
                    cells.append(f"{_seconds(run['seconds'])} ({run['peak_rss_mb']:,.0f} MiB){gap}")
            modes = {
                r["gap_mode"]
                for r in runs
                if r["dataset"] == dataset and r["n"] == n and "gap_mode" in r
            }
            cells.append("; ".join(sorted(modes)) or "not computed")
            lines.append(_row(cells))
        lines.append("")
        if fits.get(dataset):
            lines += [
                _row(["method", "exponent b (seconds ~ a N^b)", "sizes fitted"]),
                "|---|---:|---|",
            ]
            for method, fit in fits[dataset].items():
                lines.append(
                    _row(
                        [
                            method,
                            f"{fit['exponent']:.2f}",
                            ", ".join(f"{s:,}" for s in fit["sizes"]),
                        ]
                    )
                )
            lines.append("")
        if dataset == "synthetic":
            run = next(
                (
                    r
                    for r in runs
                    if r["dataset"] == dataset
                    and r["n"] == KNN_TARGET_N
                    and r["method"] == "tbs_knn_faiss"
                    and "seconds" in r
                ),
                None,
            )
            if run is not None:
                met = (
                    run["seconds"] <= KNN_TARGET_SECONDS
                    and run["peak_rss_mb"] * 2**20 <= KNN_TARGET_BYTES
                )
                targets.append(
                    [
                        f"tbs knn (faiss) at N = 1M: <= 5 min, <= 8 GB (`{name}`)",
                        f"{run['seconds']:.0f} s (CPU {run['cpu_seconds']:.0f} s, "
                        f"load {run['load_before']:.1f}), "
                        f"{run['peak_rss_mb'] / 1024:.1f} GiB peak",
                        met,
                    ]
                )
    return lines, targets


def epoch_section(name: str, report: dict) -> tuple[list[str], list[list]]:
    lines = [
        f"## Epoch overhead (`{name}`)",
        "",
        f"{_load(report)}; {report['wall_seconds'] / 60:.1f} min in all. Second epoch of "
        "each run; x random = median epoch wall seconds over random's (the target's "
        "measure), CPU time x random the same in process CPU time; sampler share = the "
        "sampler's seconds over random's epoch.",
        "",
    ]
    targets = []
    for config, block in report["configs"].items():
        settings = block["settings"]
        lines += [
            f"### {config}: {settings.get('model.encoder')}, "
            f"{block.get('n_train') or settings.get('data.max_train_pairs')} pairs, batch "
            f"{settings['train.batch_size']}, {block['repeats']} repetition(s)",
            "",
            _row(
                [
                    "sampler",
                    "epoch s",
                    "x random",
                    "paired ratios",
                    "CPU time x random",
                    "sampler s",
                    "sampler share",
                    "steps x random",
                ]
            ),
            "|---|---:|---:|---|---:|---:|---:|---:|",
        ]
        for sampler, s in block["summary"].items():
            paired = ", ".join(f"{x:.3f}" for x in s["paired_ratios"])
            cpu = "" if s.get("cpu_ratio") is None else f"{s['cpu_ratio']:.3f}"
            lines.append(
                _row(
                    [
                        sampler,
                        f"{s['epoch_seconds']:.2f}",
                        f"{s['ratio']:.3f}",
                        paired,
                        cpu,
                        f"{s['sampler_seconds']:.2f}",
                        f"{s['sampler_share']:.1%}",
                        f"{s['step_ratio']:.3f}",
                    ]
                )
            )
        summary = block["summary"]
        if "tbs_cached" in summary and summary["tbs_cached"]["ratio"] > EPOCH_TARGET:
            cached = summary["tbs_cached"]
            loads = ", ".join(f"{r['load_before']:.1f}" for r in block["runs"])
            lines += [
                "",
                f"tbs (cached) is x{cached['ratio']:.3f} random: its sampler took "
                f"{cached['sampler_seconds']:.2f} s ({cached['sampler_share']:.1%} of "
                f"random's epoch); the rest is in the training steps (x"
                f"{cached['step_ratio']:.3f}), the same work for every sampler but for "
                f"the batches' composition (padding) and the embedding cache's copies; "
                f"with other jobs on the machine (1-min load before each run: {loads}), "
                f"compare the sampler share, and repeat (--repeats-*) to separate them.",
            ]
        lines.append("")
        if "tbs_cached" in summary:
            extra = f"; hardneg x{summary['hardneg']['ratio']:.3f}" if "hardneg" in summary else ""
            cached = summary["tbs_cached"]
            cpu = "" if cached.get("cpu_ratio") is None else f" (CPU x{cached['cpu_ratio']:.3f})"
            targets.append(
                [
                    f"tbs (cached) epoch <= 1.05 x random ({config}, `{name}`)",
                    f"x{cached['ratio']:.3f}{cpu}{extra}",
                    summary["tbs_cached"]["ratio"] <= EPOCH_TARGET,
                ]
            )
    return lines, targets


def train_section(name: str, report: dict) -> tuple[list[str], list[list]]:
    lines = [
        f"## Training throughput (`{name}`)",
        "",
        f"{report['config']['model']}, batch {report['config']['batch_size']}, length "
        f"{report['config']['max_length']}; {_load(report)}.",
        "",
        _row(
            [
                "precision",
                "codesearch pairs/s",
                "sentence-transformers pairs/s",
                "plain pairs/s",
                "codesearch / st (paired median)",
            ]
        ),
        "|---|---:|---:|---:|---:|",
    ]
    targets = []
    for precision, block in report["precisions"].items():
        m = block["methods"]
        ratio = block["ratios"]["codesearch/sentence_transformers"]["paired_median"]
        lines.append(
            _row(
                [
                    precision,
                    f"{m['codesearch']['pairs_per_s']:.2f}",
                    f"{m['sentence_transformers']['pairs_per_s']:.2f}",
                    f"{m['plain']['pairs_per_s']:.2f}",
                    f"{ratio:.2f}",
                ]
            )
        )
        targets.append(
            [
                f"training >= 1.0x sentence-transformers ({precision}, `{name}`)",
                f"x{ratio:.2f}",
                ratio >= TRAIN_TARGET,
            ]
        )
    return lines + [""], targets


def ranking_section(name: str, report: dict) -> tuple[list[str], list[list]]:
    c = report["config"]
    lines = [
        f"## Ranking (`{name}`)",
        "",
        f"{c['queries']:,} queries x {c['candidates']:,} candidates, d = {c['dim']}; "
        f"{report['agreement']['n_mismatch']} rank mismatches.",
        "",
        _row(["method", "seconds", "peak extra MiB"]),
        "|---|---:|---:|",
        _row(
            [
                "codesearch gold_ranks",
                f"{report['ours']['seconds']:.2f}",
                f"{report['ours']['peak_extra_mb']:,.0f}",
            ]
        ),
        _row(
            [
                "sentence-transformers semantic_search",
                f"{report['sentence_transformers']['seconds']:.2f}",
                f"{report['sentence_transformers']['peak_extra_mb']:,.0f}",
            ]
        ),
        "",
    ]
    return lines, [
        [
            f"ranking >= 3x semantic_search (`{name}`)",
            f"x{report['speedup']:.1f}",
            report["speedup"] >= RANKING_TARGET,
        ]
    ]


def cpu_speedups_section(name: str, report: dict) -> tuple[list[str], list[list]]:
    e, train = report["encode"], report["train"]
    if "native" in train:  # reports from before the per-precision rows: bf16, two variants
        train = {
            "bf16": {
                "pairs_per_s": {
                    "baseline": train["pairs_per_s"]["native"],
                    "fast_dropout": train["pairs_per_s"]["fast"],
                }
            }
        }
    machine = report.get("machine", {})
    where = f"{machine['cpu_model']} ({machine['cpu_capability']})" if machine else "CPU"
    lines = [
        f"## CPU speedups (`{name}`)",
        "",
        f"{report['language']}, {report['threads']} threads, {where}; {_load(report)}.",
        "",
        _row(["what", "baseline", "faster path", "ratio"]),
        "|---|---:|---:|---:|",
    ]
    if "bf16_over_fp32" in e:
        lines.append(
            _row(
                [
                    f"encode {e['queries']:,} test queries and codes (texts/s)",
                    f"fp32 {e['texts_per_s']['fp32']:.0f}",
                    f"bf16 {e['texts_per_s']['bf16']:.0f}",
                    f"x{e['bf16_over_fp32']:.2f}",
                ]
            )
        )
    for precision, t in train.items():
        rate = t["pairs_per_s"]
        for variant in [v for v in rate if v != "baseline"]:
            lines.append(
                _row(
                    [
                        f"MiniLM training, {precision} (pairs/s)",
                        f"torch dropout {rate['baseline']:.1f}",
                        f"{variant.replace('_', ' ')} {rate[variant]:.1f}",
                        f"x{rate[variant] / rate['baseline']:.2f}",
                    ]
                )
            )
    lines.append("")
    if "bf16_over_fp32" in e:
        lines += [
            f"Ranks under bf16: MRR {100 * e['mrr']['fp32']:.2f} (fp32) against "
            f"{100 * e['mrr']['bf16']:.2f}; {100 * e['same_rank_share']:.1f}% of gold ranks "
            f"identical, largest change {e['max_rank_change']}.",
            "",
        ]
    else:
        lines += [
            f"Encoding in fp32 only, {e['texts_per_s']['fp32']:.0f} texts/s (bf16 is not native "
            "on this CPU).",
            "",
        ]
    return lines, []


SECTIONS = {
    "samplers": samplers_section,
    "epoch_overhead": epoch_section,
    "train_throughput": train_section,
    "ranking": ranking_section,
    "cpu_speedups": cpu_speedups_section,
}
ORDER = ("samplers", "epoch_overhead", "train_throughput", "ranking", "cpu_speedups")


def summarize(directory: Path) -> str:
    reports, other = {k: [] for k in ORDER}, []
    for path in sorted(directory.glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except ValueError:
            other.append(f"{path.name} (not valid JSON)")
            continue
        found = kind(report) if isinstance(report, dict) else None
        if found is None:
            other.append(path.name)
        else:
            reports[found].append((path.name, report))
    sections, targets = [], []
    for key in ORDER:
        for name, report in reports[key]:
            lines, found = SECTIONS[key](name, report)
            sections += lines
            targets += found
    expected = {
        "samplers": "tbs knn (faiss) at N = 1M: <= 5 min, <= 8 GB",
        "epoch_overhead": "tbs (cached) epoch <= 1.05 x random",
        "train_throughput": "training >= 1.0x sentence-transformers",
        "ranking": "ranking >= 3x semantic_search",
    }
    for text in expected.values():
        if not any(t[0].startswith(text) for t in targets):
            targets.append([text, "no report", None])
    out = [
        "# Benchmarks",
        "",
        "Every comparison is a ratio measured side by side in one run. Written by "
        "`benchmarks/summary.py` from the JSON reports in this folder.",
        "",
        "## Targets",
        "",
        _row(["target", "measured", "status"]),
        "|---|---|---|",
    ]
    out += [_row([t, m, _mark(met)]) for t, m, met in targets]
    out += ["", *sections]
    if other:
        out += ["## Not summarised", "", *[f"- {name}" for name in other], ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="results/bench")
    parser.add_argument("--out", default=None, help="default: DIR/summary.md")
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    text = summarize(directory)
    out = Path(args.out) if args.out else directory / "summary.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
