"""`codesearch reproduce PROFILE` (the grid driver, ``codesearch.reproduce``) and `codesearch
report DIR` (``codesearch.report``); `experiments/reproduce.py`, `python -m codesearch.reproduce`
and `python -m codesearch.report` are these same commands."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    reproduce = sub.add_parser(
        "reproduce", help="run a profile's grid of training cells and its report"
    )
    reproduce.add_argument("profile", help="experiments/<name>.yaml, or just the name")
    reproduce.add_argument("--runs", default=None, help="default runs/<profile>")
    reproduce.add_argument("--results", default=None, help="default results/<profile>")
    reproduce.add_argument(
        "--check", action="store_true", help="validate the profile and list its cells, run nothing"
    )
    reproduce.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the finished cells"
    )
    reproduce.add_argument(
        "--languages",
        default=None,
        help="run a slice: only these languages (comma-separated), into "
        "runs|results/<profile>-<languages>-seed<seeds>",
    )
    reproduce.add_argument(
        "--seeds", default=None, help="run a slice: only these seeds (comma-separated)"
    )
    reproduce.set_defaults(func=cmd_reproduce, interrupt_hint="; rerun the same command to resume")
    report = sub.add_parser("report", help="tables, intervals and plots of a results directory")
    report.add_argument("results_dir", help="results/<profile> written by make reproduce")
    report.set_defaults(func=cmd_report)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _slice_arguments(args: argparse.Namespace) -> tuple[list[str] | None, list[int] | None]:
    from codesearch.data.schema import parse_languages
    from codesearch.errors import UserError

    languages = parse_languages(args.languages) if args.languages else None
    seeds = None
    if args.seeds:
        try:
            seeds = [int(part) for part in args.seeds.split(",")]
        except ValueError:
            raise UserError(
                f"--seeds: expected comma-separated integers, got {args.seeds}"
            ) from None
    return languages, seeds


def cmd_reproduce(args: argparse.Namespace) -> int:
    from codesearch.reproduce import (
        load_profile,
        plan_cells,
        plan_references,
        run_profile,
        slice_profile,
    )

    signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop: like Ctrl-C
    path = Path(args.profile)
    if not path.suffix:
        path = Path("experiments") / f"{args.profile}.yaml"
    languages, seeds = _slice_arguments(args)
    if args.check:
        profile = slice_profile(load_profile(path), languages, seeds)
        runs = Path(args.runs or f"runs/{profile.name}")
        results = Path(args.results or f"results/{profile.name}")
        references = plan_references(profile, results)
        for reference in references:
            print(
                f"{reference.id}: {', '.join(reference.languages)} ({reference.model}, untrained)"
            )
        cells = plan_cells(profile, runs, results)
        for cell in cells:
            print(f"{cell.id}: {', '.join(cell.languages)}")
        extra = f" and {len(references)} zero-shot evaluation(s)" if references else ""
        print(f"{profile.name}: {len(cells)} cells{extra}, valid")
    elif args.report_only:
        from codesearch.report import write_report

        name = slice_profile(load_profile(path), languages, seeds).name
        results = Path(args.results or f"results/{name}")
        write_report(results)
        print(f"report: {results / 'report.md'}")
    else:
        run_profile(path, args.runs, args.results, languages=languages, seeds=seeds)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from codesearch.report import write_report

    write_report(args.results_dir)
    print(f"wrote {Path(args.results_dir) / 'report.md'}, results.json and plots/")
    return 0
