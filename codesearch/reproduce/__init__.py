"""The `make reproduce` driver: run a profile's grid of training cells and write the report.

A profile (``experiments/<name>.yaml``, :mod:`.profile`) names a prepared data directory (and
the command that prepares it when it is missing) and groups of cells. A cell
(:mod:`.cells`) is one (group, sampler, seed): one ``codesearch train`` run over the group's
languages, then one ``codesearch evaluate`` of it, both run as subprocesses exactly as a user
would type them. Cells that finished are skipped, a cell that was interrupted resumes from
its checkpoint, and the report (:mod:`codesearch.report`) is rewritten at the end from every
finished cell (:mod:`.driver`).

Layout: ``runs/<profile>/<group>/<sampler>-seed<k>/`` (the training run) and
``results/<profile>/{grid.json, cells/<cell>.json, logs/<cell>.log, report.md, ...}``.
"""

from codesearch.reproduce.cells import (
    Cell,
    CellFailed,
    Children,
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
    shared_pools,
)
from codesearch.reproduce.profile import (
    Arm,
    Group,
    Profile,
    check_name,
    group_config,
    load_profile,
    parse_arm,
    parse_compare,
    parse_published,
    slice_profile,
)

__all__ = [
    "Arm",
    "Cell",
    "CellFailed",
    "Children",
    "Group",
    "Profile",
    "check_name",
    "evaluate_command",
    "grid_record",
    "group_config",
    "load_profile",
    "parse_arm",
    "parse_compare",
    "parse_published",
    "plan_cells",
    "prepare_data",
    "previous_cells",
    "run_cell",
    "run_group",
    "run_profile",
    "shared_pools",
    "slice_profile",
    "train_command",
    "train_finished",
    "write_group_configs",
]
