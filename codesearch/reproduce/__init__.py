"""The `make reproduce` driver: run a profile's grid of training cells and write the report.

A profile (``experiments/<name>.yaml``, :mod:`.profile`) names a prepared data directory (and
the command that prepares it when it is missing) and groups of cells. A cell
(:mod:`.cells`) is one (group, sampler, seed): one ``codesearch train`` run over the group's
languages, then one ``codesearch evaluate`` of it, both run as subprocesses exactly as a user
would type them. A group with ``zero_shot: true`` also gets one evaluation of its base model
untrained (:mod:`.reference`), a reference row of the report. Cells that finished are
skipped, a cell that was interrupted resumes from its checkpoint, and the report
(:mod:`codesearch.report`) is rewritten at the end from every finished cell (:mod:`.driver`).

Layout: ``runs/<profile>/<group>/<sampler>-seed<k>/`` (the training run) and
``results/<profile>/{grid.json, cells/<cell>.json, logs/<cell>.log, report.md, ...}``.
"""

from codesearch.reproduce.cells import (
    Cell,
    CellFailed,
    Children,
    child_env,
    evaluate_command,
    plan_cells,
    run_cell,
    train_command,
    train_finished,
    write_group_configs,
)
from codesearch.reproduce.driver import (
    grid_record,
    prepare_data,
    previous_cells,
    run_group,
    run_profile,
    run_references,
    shared_pools,
)
from codesearch.reproduce.profile import (
    Arm,
    Group,
    Profile,
    check_name,
    group_base_config,
    group_config,
    load_profile,
    parse_arm,
    parse_compare,
    parse_published,
    slice_profile,
)
from codesearch.reproduce.reference import (
    ZERO_SHOT,
    Reference,
    plan_references,
    run_reference,
    zero_shot_command,
)

__all__ = [
    "ZERO_SHOT",
    "Arm",
    "Cell",
    "CellFailed",
    "Children",
    "Group",
    "Profile",
    "Reference",
    "check_name",
    "child_env",
    "evaluate_command",
    "grid_record",
    "group_base_config",
    "group_config",
    "load_profile",
    "parse_arm",
    "parse_compare",
    "parse_published",
    "plan_cells",
    "plan_references",
    "prepare_data",
    "previous_cells",
    "run_cell",
    "run_group",
    "run_profile",
    "run_reference",
    "run_references",
    "shared_pools",
    "slice_profile",
    "train_command",
    "train_finished",
    "write_group_configs",
    "zero_shot_command",
]
