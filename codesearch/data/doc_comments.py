"""Doc comments next to a definition, and their text without comment markers (for `extract`).

Positions are byte offsets into the file's source; a definition's code is cut out of the
source by ``cut`` so that what stays is byte for byte the file's text.
"""

from __future__ import annotations

import inspect
from bisect import bisect_right

import tree_sitter


def node_text(source: bytes, node: tree_sitter.Node | None) -> str:
    if node is None:
        return ""
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _line_start(source: bytes, pos: int) -> int:
    return source.rfind(b"\n", 0, pos) + 1


def cut(source: bytes, start: int, end: int, cut_start: int, cut_end: int) -> str:
    """source[start:end] without source[cut_start:cut_end], dropping lines this empties.

    When the cut piece stands on lines of its own, those lines go, and so do blank lines
    right after them (the blank line that usually follows a docstring).
    """
    ls = _line_start(source, cut_start)
    eol = source.find(b"\n", cut_end, end)
    line_end = end if eol == -1 else eol + 1
    own_lines = ls >= start and not source[ls:cut_start].strip()
    if own_lines and not source[cut_end:line_end].strip(b" \t\r\n;"):
        cut_start, cut_end = ls, line_end
        while True:
            nxt = source.find(b"\n", cut_end, end)
            if nxt == -1 or source[cut_end:nxt].strip():
                break
            cut_end = nxt + 1
    else:  # the piece shares its line with code: `def f(): """doc"""; return 1`
        while cut_end < end and source[cut_end : cut_end + 1] in (b" ", b"\t", b";"):
            cut_end += 1
    code = source[start:cut_start] + source[cut_end:end]
    return code.decode("utf-8", errors="replace")


def dedent(text: str) -> str:
    """Like inspect.cleandoc, also for lines that only hold trailing whitespace."""
    return inspect.cleandoc("\n".join(line.rstrip() for line in text.splitlines())).strip()


def clean_block_comment(text: str) -> str:
    """`/** ... */` or `/* ... */` without its markers and the leading `*` of each line."""
    body = text[2:]
    body = body[:-2] if body.endswith("*/") else body
    body = body.strip("*")
    lines = []
    for line in body.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("*"):
            stripped = stripped[1:]
            lines.append(stripped[1:] if stripped.startswith(" ") else stripped)
        else:
            lines.append(line)
    return dedent("\n".join(lines))


def clean_line_comments(texts: list[str], marker: str) -> str:
    """`//` or `#` lines without their markers, common indentation removed."""
    lines = [t.lstrip()[len(marker) :].lstrip(marker[0]) for t in texts]
    return dedent("\n".join(lines))


class Comments:
    """A file's comments sorted by position, to find the doc comment next to a definition."""

    def __init__(self, source: bytes, nodes: list[tree_sitter.Node]):
        self.source = source
        self.nodes = sorted(nodes, key=lambda n: n.start_byte)
        self.ends = [n.end_byte for n in self.nodes]

    def _last_before(self, pos: int) -> int:
        """Index of the last comment ending at or before pos, or -1."""
        return bisect_right(self.ends, pos) - 1

    def _gap(self, start: int, end: int) -> bytes | None:
        gap = self.source[start:end]
        return gap if not gap.strip() else None

    def _starts_line(self, node: tree_sitter.Node) -> bool:
        return not self.source[_line_start(self.source, node.start_byte) : node.start_byte].strip()

    def javadoc_before(self, pos: int) -> tree_sitter.Node | None:
        """The `/** */` comment that ends right before pos, with only whitespace between."""
        i = self._last_before(pos)
        if i < 0:
            return None
        node = self.nodes[i]
        if self._gap(node.end_byte, pos) is None or not _is_javadoc(self.source, node):
            return None
        return node

    def javadoc_inside(self, start: int, end: int) -> tree_sitter.Node | None:
        """The first `/** */` comment within [start, end) (after annotations / attributes)."""
        i = bisect_right(self.ends, start)  # first comment ending after start
        while i < len(self.nodes) and self.nodes[i].end_byte <= end:
            if self.nodes[i].start_byte >= start and _is_javadoc(self.source, self.nodes[i]):
                return self.nodes[i]
            i += 1
        return None

    def lines_above(self, pos: int, line_marker: bytes) -> list[tree_sitter.Node]:
        """The comment lines directly above pos (no blank line), or one block comment."""
        i = self._last_before(pos)
        block: list[tree_sitter.Node] = []
        end = pos
        while i >= 0:
            node = self.nodes[i]
            gap = self._gap(node.end_byte, end)
            if gap is None or gap.count(b"\n") != 1 or not self._starts_line(node):
                break
            is_line = self.source.startswith(line_marker, node.start_byte)
            if not is_line:  # a block comment counts alone
                if not block:
                    block.append(node)
                break
            block.append(node)
            end = node.start_byte
            i -= 1
        block.reverse()
        return block


def _is_javadoc(source: bytes, node: tree_sitter.Node) -> bool:
    return source.startswith(b"/**", node.start_byte) and not source.startswith(
        b"/**/", node.start_byte
    )
