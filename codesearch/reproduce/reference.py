"""The zero-shot reference of a group (``zero_shot: true``): one ``codesearch evaluate`` of the
group's base model untrained (its config's ``model.model`` with its ``max_query_length`` and
``max_code_length``), on the cells' data, languages, protocol and ``evaluate`` arguments. It is
deterministic, so it runs once per group, not per seed; it is stored like a cell's evaluation
(``cells/<group>__zero-shot.json``, ``logs/<group>__zero-shot.log``) and the report shows it
beside the arms, outside their paired tests. Its precision is the cells' evaluation precision
(``codesearch evaluate``'s default ``auto``, or the group's ``evaluate`` arguments): the
cells' evaluations do not use the training precision either."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import codesearch.reproduce.cells as cells
from codesearch.reproduce.profile import Profile, group_base_config

ZERO_SHOT = "zero-shot"  # the reference's label in ids, grid.json and the report


@dataclasses.dataclass
class Reference:
    """One group's zero-shot evaluation; ``threads``: the group's whole share (``jobs`` x
    ``threads``), as it runs alone before the cells."""

    group: str
    model: str
    languages: list[str]
    eval_path: Path
    log_path: Path
    threads: int
    command: list[str]

    @property
    def id(self) -> str:
        return f"{self.group}__{ZERO_SHOT}"

    def record(self, state: dict) -> dict:
        """As grid.json lists it under ``references``."""
        return {
            "id": self.id,
            "group": self.group,
            "kind": ZERO_SHOT,
            "model": self.model,
            "languages": self.languages,
            "eval": str(self.eval_path),
            "log": str(self.log_path),
            **state,
        }


def zero_shot_command(profile: Profile, group: str, eval_path: Path) -> list[str]:
    """``codesearch evaluate`` of the group's base model, with its lengths (and
    ``--trust-remote-code`` where its config allows remote code)."""
    spec = profile.groups[group]
    model = group_base_config(profile, group).model
    return [
        sys.executable,
        "-m",
        "codesearch",
        "evaluate",
        "--model",
        model.model,
        "--data",
        profile.data_path,
        "--languages",
        ",".join(spec.languages),
        "--protocol",
        profile.protocol,
        "--max-query-length",
        str(model.max_query_length),
        "--max-code-length",
        str(model.max_code_length),
        *(["--trust-remote-code"] if model.trust_remote_code else []),
        "--out",
        str(eval_path),
        "--quiet",
        *spec.evaluate,
    ]


def plan_references(profile: Profile, results_dir: Path) -> list[Reference]:
    """The zero-shot evaluation of every group that asks for one, in the profile's order."""
    references = []
    for name, group in profile.groups.items():
        if not group.zero_shot:
            continue
        eval_path = results_dir / "cells" / f"{name}__{ZERO_SHOT}.json"
        references.append(
            Reference(
                group=name,
                model=group_base_config(profile, name).model.model,
                languages=group.languages,
                eval_path=eval_path,
                log_path=results_dir / "logs" / f"{name}__{ZERO_SHOT}.log",
                threads=group.jobs * (group.threads or 1),
                command=zero_shot_command(profile, name, eval_path),
            )
        )
    return references


def run_reference(reference: Reference, children: cells.Children) -> dict:
    """Evaluate one reference (a CellFailed names its exit code); returns its timing."""
    reference.log_path.parent.mkdir(parents=True, exist_ok=True)
    reference.eval_path.parent.mkdir(parents=True, exist_ok=True)
    env = cells.child_env(reference.threads)
    seconds = cells._run_logged(reference.command, reference.log_path, env, children)
    return {"eval_seconds": seconds}
