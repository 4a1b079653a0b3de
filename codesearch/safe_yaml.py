"""Every YAML file the program reads (configs, profiles, run configs, source lists), read with
bounds: PyYAML's safe loader runs no code, but a small file of nested aliases ("billion
laughs") expands into an object that takes hours to walk. A file over ``MAX_BYTES``, or whose
document, with every alias expanded, has more than ``MAX_NODES`` nodes (counted on the
composed node graph, each shared node once, so the count itself is cheap), or a recursive
alias, is a UserError before any Python object is built. No file this project writes comes
near the bounds.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from codesearch.errors import UserError

MAX_BYTES = 1 << 20  # 1 MiB
MAX_NODES = 100_000  # scalars, lists and mappings, aliases expanded


def _expanded_nodes(node: yaml.Node, memo: dict[int, int], active: set[int]) -> int:
    """How many nodes ``node`` becomes with its aliases expanded (stops counting past
    MAX_NODES); ValueError on a recursive alias."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ValueError("a recursive alias")
    active.add(key)
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    total = 1
    for child in children:
        total += _expanded_nodes(child, memo, active)
        if total > MAX_NODES:
            break
    active.discard(key)
    memo[key] = total
    return total


def read_yaml(path: str | Path, what: str = "YAML file") -> object:
    """The parsed content of ``path`` (``yaml.safe_load``); a UserError naming the file when
    it cannot be read, is not valid YAML, or is over the bounds."""
    path = Path(path)
    try:
        if not path.is_file():
            raise UserError(f"{path}: no such {what}")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{path}: {size:,} bytes; a {what} may hold at most {MAX_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc})".replace("\n", " ")) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        nodes = 0 if root is None else _expanded_nodes(root, {}, set())
        if nodes > MAX_NODES:
            raise UserError(
                f"{path}: expands (aliases included) to over {MAX_NODES:,} YAML nodes; "
                f"a {what} may hold at most that many"
            )
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    except (ValueError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise UserError(f"{path}: not a usable {what}: {detail}") from None
