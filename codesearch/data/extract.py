"""Functions and their doc comments from source files, parsed with tree-sitter.

The recipe of CodeSearchNet's function parsers (Husain et al. 2019, arXiv 1909.09436): a pair
is a function definition and the documentation written for it. Only functions that have a
doc comment are returned; cutting the doc comment to its first paragraph and the cleaning
rules live in `codesearch.data.filters`.

Per language (the node types are tree-sitter's):

- python: `function_definition` anywhere (methods, nested functions); the docstring is the
  body's first statement when it is a plain string literal (not an f-string or bytes). The
  code is the definition (with its decorators) minus the docstring statement.
- java: `method_declaration`, `constructor_declaration` with a `/** */` comment right before
  them (only whitespace between), or right after their annotations (then cut out of the code).
- javascript: function and generator declarations, class and object-literal methods, and
  function / arrow / generator expressions assigned by `const|let|var f =`, `a.b =` or as an
  object literal's `key:` value, with a `/** */` comment before the statement, also when the
  statement is wrapped in `export`. For assigned functions the code is the whole statement
  (so that it names the function), without the `export` keyword.
- go: `function_declaration`, `method_declaration` with the `//` comment lines (or one
  `/* */` block) on the lines directly above, no blank line between. Directive lines such as
  `//go:generate` are not documentation.
- php: `function_definition`, `method_declaration` with a `/** */` comment before them, or
  after their `#[...]` attributes.
- ruby: `method`, `singleton_method` with the `#` comment lines (or one `=begin`/`=end`
  block) directly above, also before `private def ...`.

Names are qualified by the enclosing named classes (python: classes and functions, like
`__qualname__` without `<locals>`), joined with ".": `Outer.Inner.method`. Go methods are
`Receiver.Method` (pointer star and type parameters dropped). Ruby uses the class and module
names as written (`Foo::Bar.meth`), singleton methods `Foo.self.meth`, methods inside
`class << self` likewise. `is_method` is true for methods of a class, interface, trait, module
or object literal and for javascript functions assigned to `a.b`.

Parsing never raises on bad input (tree-sitter recovers from syntax errors); definitions found
in a partly broken file are still returned, and `has_syntax_errors` lets the caller count
such files.
"""

from __future__ import annotations

import inspect
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache

import tree_sitter
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_php
import tree_sitter_python
import tree_sitter_ruby

SOURCE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "python": (".py",),
    "java": (".java",),
    "javascript": (".js", ".mjs", ".cjs"),
    "go": (".go",),
    "php": (".php",),
    "ruby": (".rb",),
}

_GRAMMARS = {
    "python": tree_sitter_python.language,
    "java": tree_sitter_java.language,
    "javascript": tree_sitter_javascript.language,
    "go": tree_sitter_go.language,
    "php": tree_sitter_php.language_php,  # the grammar that starts at `<?php`, with HTML around
    "ruby": tree_sitter_ruby.language,
}

# One query per language: definitions, the scopes that qualify their names, and comments.
_QUERIES = {
    "python": "(function_definition) @function (class_definition) @scope",
    "java": """
        [(method_declaration) (constructor_declaration)] @function
        [(class_declaration) (interface_declaration) (enum_declaration) (record_declaration)
         (annotation_type_declaration)] @scope
        (block_comment) @comment
    """,
    "javascript": """
        [(function_declaration) (generator_function_declaration) (method_definition)
         (function_expression) (arrow_function) (generator_function)] @function
        [(class_declaration) (class)] @scope
        (comment) @comment
    """,
    "go": "[(function_declaration) (method_declaration)] @function (comment) @comment",
    "php": """
        [(function_definition) (method_declaration)] @function
        [(class_declaration) (interface_declaration) (trait_declaration)
         (enum_declaration)] @scope
        (comment) @comment
    """,
    "ruby": """
        [(method) (singleton_method)] @function
        [(class) (module) (singleton_class)] @scope
        (comment) @comment
    """,
}

_GO_DIRECTIVE = re.compile(r"^//(?:[a-z0-9]+:\S|line |export |extern )")


@dataclass(frozen=True)
class Function:
    name: str  # qualified where natural: "Class.method", "Receiver.Method"
    docstring: str  # the doc comment without comment markers, not yet cut to a paragraph
    code: str  # the definition's source without its doc comment
    line: int  # 1-based line where the definition starts (decorators included)
    is_method: bool


def _check_language(language: str) -> None:
    if language not in _GRAMMARS:
        raise ValueError(
            f"unsupported language '{language}': expected one of {', '.join(_GRAMMARS)}"
        )


@cache
def _language(language: str) -> tree_sitter.Language:
    _check_language(language)
    return tree_sitter.Language(_GRAMMARS[language]())


@cache
def parser_for(language: str) -> tree_sitter.Parser:
    """The (cached) tree-sitter parser for a language; ValueError for an unknown one."""
    return tree_sitter.Parser(_language(language))


@cache
def _query(language: str) -> tree_sitter.Query:
    return tree_sitter.Query(_language(language), _QUERIES[language])


def parse(source: bytes, language: str) -> tree_sitter.Tree:
    """Parse once; pass the tree to `extract_functions` and `has_syntax_errors`."""
    return parser_for(language).parse(source)


def has_syntax_errors(source: bytes, language: str, tree: tree_sitter.Tree | None = None) -> bool:
    """Whether tree-sitter had to recover from a syntax error anywhere in the file."""
    tree = tree if tree is not None else parse(source, language)
    return tree.root_node.has_error


def extract_functions(
    source: bytes, language: str, tree: tree_sitter.Tree | None = None
) -> list[Function]:
    """All documented functions of one file, in source order."""
    tree = tree if tree is not None else parse(source, language)
    captures = tree_sitter.QueryCursor(_query(language)).captures(tree.root_node)
    comments = _Comments(source, captures.get("comment", []))
    extract_one = _EXTRACTORS[language]
    out = []
    for node, scopes in _with_scopes(
        captures.get("function", []), captures.get("scope", []), language, source
    ):
        found = extract_one(node, scopes, source, comments)
        if found is not None:
            out.append(found)
    return out


# ---------------------------------------------------------------- shared helpers


def _text(source: bytes, node: tree_sitter.Node | None) -> str:
    if node is None:
        return ""
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _scope_name(node: tree_sitter.Node, language: str, source: bytes) -> str:
    if node.type == "singleton_class":  # ruby `class << self`
        return _text(source, node.child_by_field_name("value"))
    return _text(source, node.child_by_field_name("name"))


def _with_scopes(functions, scopes, language: str, source: bytes):
    """Yield (function node, names of the enclosing scopes) in one sweep over positions.

    Sorting by (start, -end) puts an enclosing node before what it contains; a stack of the
    open scopes replaces walking up `.parent` (which tree-sitter answers from the root).
    """
    items = [(n.start_byte, -n.end_byte, 1, n) for n in scopes]
    items += [(n.start_byte, -n.end_byte, 0, n) for n in functions]
    items.sort(key=lambda item: (item[0], item[1], -item[2]))
    stack: list[tuple[int, str]] = []  # (end byte, name)
    for start, neg_end, is_scope, node in items:
        while stack and stack[-1][0] <= start:
            stack.pop()
        names = [name for _, name in stack if name]
        if is_scope:
            stack.append((-neg_end, _scope_name(node, language, source)))
        else:
            yield node, names
            if language == "python":  # nested functions are qualified by their parents
                stack.append((-neg_end, _text(source, node.child_by_field_name("name"))))


def _line_start(source: bytes, pos: int) -> int:
    return source.rfind(b"\n", 0, pos) + 1


def _cut(source: bytes, start: int, end: int, cut_start: int, cut_end: int) -> str:
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


def _dedent(text: str) -> str:
    """Like inspect.cleandoc, also for lines that only hold trailing whitespace."""
    return inspect.cleandoc("\n".join(line.rstrip() for line in text.splitlines())).strip()


def _clean_block_comment(text: str) -> str:
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
    return _dedent("\n".join(lines))


def _clean_line_comments(texts: list[str], marker: str) -> str:
    """`//` or `#` lines without their markers, common indentation removed."""
    lines = [t.lstrip()[len(marker) :].lstrip(marker[0]) for t in texts]
    return _dedent("\n".join(lines))


class _Comments:
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


def _javadoc_function(node, name, scopes, source, comments, anchor=None, is_method=True):
    """Java / PHP / JavaScript: the `/** */` comment before anchor, or inside the header."""
    anchor = anchor if anchor is not None else node
    comment = comments.javadoc_before(anchor.start_byte)
    if comment is not None:
        code = source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")
    else:
        name_node = node.child_by_field_name("name")
        if name_node is None:
            return None
        comment = comments.javadoc_inside(node.start_byte, name_node.start_byte)
        if comment is None:
            return None
        code = _cut(source, node.start_byte, node.end_byte, comment.start_byte, comment.end_byte)
    doc = _clean_block_comment(_text(source, comment))
    if not doc or not name:
        return None
    qualified = ".".join([*scopes, name])
    return Function(qualified, doc, code, node.start_point.row + 1, is_method)


# ---------------------------------------------------------------- per language


def _python(node, scopes, source, comments):
    body = node.child_by_field_name("body")
    if body is None:
        return None
    first = None
    for i in range(body.named_child_count):
        child = body.named_child(i)
        if child.type != "comment":
            first = child
            break
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return None
    raw = _python_string(source, first.named_child(0))
    doc = _dedent(raw) if raw is not None else ""
    if not doc:
        return None
    parent = node.parent
    definition = parent if parent is not None and parent.type == "decorated_definition" else node
    code = _cut(
        source, definition.start_byte, definition.end_byte, first.start_byte, first.end_byte
    )
    container = definition.parent.parent if definition.parent is not None else None
    is_method = container is not None and container.type == "class_definition"
    name = ".".join([*scopes, _text(source, node.child_by_field_name("name"))])
    return Function(name, doc, code, definition.start_point.row + 1, is_method)


def _python_string(source: bytes, node: tree_sitter.Node) -> str | None:
    """The raw text of a docstring literal ("a" or concatenated "a" "b"), else None."""
    if node.type == "concatenated_string":
        parts = [_python_string(source, node.named_child(i)) for i in range(node.named_child_count)]
        return None if any(p is None for p in parts) else "".join(parts)
    if node.type != "string" or node.named_child_count < 2:
        return None
    start, end = node.named_child(0), node.named_child(node.named_child_count - 1)
    if start.type != "string_start" or end.type != "string_end":
        return None
    prefix = _text(source, start).lower()
    if "f" in prefix or "b" in prefix:  # f-strings and bytes are not docstrings
        return None
    return source[start.end_byte : end.start_byte].decode("utf-8", errors="replace")


def _java(node, scopes, source, comments):
    name = _text(source, node.child_by_field_name("name"))
    return _javadoc_function(node, name, scopes, source, comments)


def _php(node, scopes, source, comments):
    name = _text(source, node.child_by_field_name("name"))
    is_method = node.type == "method_declaration"
    return _javadoc_function(
        node, name, scopes if is_method else [], source, comments, is_method=is_method
    )


def _javascript(node, scopes, source, comments):
    kind = node.type
    parent = node.parent
    if kind in ("function_declaration", "generator_function_declaration"):
        anchor = parent if parent is not None and parent.type == "export_statement" else node
        name = _text(source, node.child_by_field_name("name"))
        return _javadoc_function(node, name, [], source, comments, anchor, is_method=False)
    if kind == "method_definition":
        name = _text(source, node.child_by_field_name("name"))
        return _javadoc_function(node, name, scopes, source, comments)
    # a function expression: documented only where it is given a name
    if parent is None:
        return None
    if parent.type == "variable_declarator":
        declaration = parent.parent
        name_node = parent.child_by_field_name("name")
        if (
            declaration is None
            or name_node is None
            or name_node.type != "identifier"
            or declaration.named_child(0) != parent
        ):
            return None
        outer = declaration.parent
        anchor = outer if outer is not None and outer.type == "export_statement" else declaration
        return _javadoc_function(
            declaration, _text(source, name_node), [], source, comments, anchor, is_method=False
        )
    if parent.type == "assignment_expression":
        left, statement = parent.child_by_field_name("left"), parent.parent
        if (
            left is None
            or left.type not in ("identifier", "member_expression")
            or statement is None
            or statement.type != "expression_statement"
        ):
            return None
        name = _text(source, left).replace(".prototype.", ".")
        return _javadoc_function(
            statement, name, [], source, comments, is_method=left.type == "member_expression"
        )
    if parent.type == "pair":
        key = _text(source, parent.child_by_field_name("key")).strip("'\"")
        return _javadoc_function(parent, key, [], source, comments)
    return None


def _go(node, scopes, source, comments):
    name = _text(source, node.child_by_field_name("name"))
    is_method = node.type == "method_declaration"
    if is_method:
        receiver = node.child_by_field_name("receiver")
        param = receiver.named_child(0) if receiver is not None else None
        recv_type = param.child_by_field_name("type") if param is not None else None
        recv = _text(source, recv_type).lstrip("*").split("[")[0].strip()
        name = f"{recv}.{name}" if recv else name
    block = comments.lines_above(node.start_byte, b"//")
    if not block:
        return None
    texts = [_text(source, c) for c in block]
    if texts[0].startswith("/*"):
        doc = _clean_block_comment(texts[0])
    else:
        doc = _clean_line_comments([t for t in texts if not _GO_DIRECTIVE.match(t)], "//")
    if not doc or not name:
        return None
    code = _text(source, node)
    return Function(name, doc, code, node.start_point.row + 1, is_method)


def _ruby(node, scopes, source, comments):
    name = _text(source, node.child_by_field_name("name"))
    if node.type == "singleton_method":
        name = f"{_text(source, node.child_by_field_name('object'))}.{name}"
    anchor = node
    parent = node.parent
    if parent is not None and parent.type == "argument_list" and parent.named_child(0) == node:
        call = parent.parent  # `private def x` / `memoize def x`
        if call is not None and call.type == "call":
            anchor = call
    block = comments.lines_above(anchor.start_byte, b"#")
    if not block:
        return None
    texts = [_text(source, c) for c in block]
    if texts[0].startswith("=begin"):
        doc = _dedent("\n".join(texts[0].splitlines()[1:-1]))
    else:
        doc = _clean_line_comments(texts, "#")
    if not doc or not name:
        return None
    return Function(
        ".".join([*scopes, name]),
        doc,
        _text(source, node),
        node.start_point.row + 1,
        bool(scopes) or node.type == "singleton_method",
    )


_EXTRACTORS = {
    "python": _python,
    "java": _java,
    "javascript": _javascript,
    "go": _go,
    "php": _php,
    "ruby": _ruby,
}
