"""Per-language rules of `codesearch.data.extract`: which definition has which doc comment.

One function per language, ``(node, enclosing scope names, source, Comments) -> Function | None``;
the rules are listed in `extract`'s docstring (CodeSearchNet's parsers, Husain et al. 2019).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import tree_sitter

from codesearch.data.doc_comments import (
    clean_block_comment,
    clean_line_comments,
    cut,
    dedent,
    node_text,
)

_GO_DIRECTIVE = re.compile(r"^//(?:[a-z0-9]+:\S|line |export |extern )")


@dataclass(frozen=True)
class Function:
    name: str  # qualified where natural: "Class.method", "Receiver.Method"
    docstring: str  # the doc comment without comment markers, not yet cut to a paragraph
    code: str  # the definition's source without its doc comment
    line: int  # 1-based line where the definition starts (decorators included)
    is_method: bool


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
        code = cut(source, node.start_byte, node.end_byte, comment.start_byte, comment.end_byte)
    doc = clean_block_comment(node_text(source, comment))
    if not doc or not name:
        return None
    qualified = ".".join([*scopes, name])
    return Function(qualified, doc, code, node.start_point.row + 1, is_method)


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
    doc = dedent(raw) if raw is not None else ""
    if not doc:
        return None
    parent = node.parent
    definition = parent if parent is not None and parent.type == "decorated_definition" else node
    code = cut(source, definition.start_byte, definition.end_byte, first.start_byte, first.end_byte)
    container = definition.parent.parent if definition.parent is not None else None
    is_method = container is not None and container.type == "class_definition"
    name = ".".join([*scopes, node_text(source, node.child_by_field_name("name"))])
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
    prefix = node_text(source, start).lower()
    if "f" in prefix or "b" in prefix:  # f-strings and bytes are not docstrings
        return None
    return source[start.end_byte : end.start_byte].decode("utf-8", errors="replace")


def _java(node, scopes, source, comments):
    name = node_text(source, node.child_by_field_name("name"))
    return _javadoc_function(node, name, scopes, source, comments)


def _php(node, scopes, source, comments):
    name = node_text(source, node.child_by_field_name("name"))
    is_method = node.type == "method_declaration"
    return _javadoc_function(
        node, name, scopes if is_method else [], source, comments, is_method=is_method
    )


def _javascript(node, scopes, source, comments):
    kind = node.type
    parent = node.parent
    if kind in ("function_declaration", "generator_function_declaration"):
        anchor = parent if parent is not None and parent.type == "export_statement" else node
        name = node_text(source, node.child_by_field_name("name"))
        return _javadoc_function(node, name, [], source, comments, anchor, is_method=False)
    if kind == "method_definition":
        name = node_text(source, node.child_by_field_name("name"))
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
            declaration, node_text(source, name_node), [], source, comments, anchor, is_method=False
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
        name = node_text(source, left).replace(".prototype.", ".")
        return _javadoc_function(
            statement, name, [], source, comments, is_method=left.type == "member_expression"
        )
    if parent.type == "pair":
        key = node_text(source, parent.child_by_field_name("key")).strip("'\"")
        return _javadoc_function(parent, key, [], source, comments)
    return None


def _go(node, scopes, source, comments):
    name = node_text(source, node.child_by_field_name("name"))
    is_method = node.type == "method_declaration"
    if is_method:
        receiver = node.child_by_field_name("receiver")
        param = receiver.named_child(0) if receiver is not None else None
        recv_type = param.child_by_field_name("type") if param is not None else None
        recv = node_text(source, recv_type).lstrip("*").split("[")[0].strip()
        name = f"{recv}.{name}" if recv else name
    block = comments.lines_above(node.start_byte, b"//")
    if not block:
        return None
    texts = [node_text(source, c) for c in block]
    if texts[0].startswith("/*"):
        doc = clean_block_comment(texts[0])
    else:
        doc = clean_line_comments([t for t in texts if not _GO_DIRECTIVE.match(t)], "//")
    if not doc or not name:
        return None
    code = node_text(source, node)
    return Function(name, doc, code, node.start_point.row + 1, is_method)


def _ruby(node, scopes, source, comments):
    name = node_text(source, node.child_by_field_name("name"))
    if node.type == "singleton_method":
        name = f"{node_text(source, node.child_by_field_name('object'))}.{name}"
    anchor = node
    parent = node.parent
    if parent is not None and parent.type == "argument_list" and parent.named_child(0) == node:
        call = parent.parent  # `private def x` / `memoize def x`
        if call is not None and call.type == "call":
            anchor = call
    block = comments.lines_above(anchor.start_byte, b"#")
    if not block:
        return None
    texts = [node_text(source, c) for c in block]
    if texts[0].startswith("=begin"):
        doc = dedent("\n".join(texts[0].splitlines()[1:-1]))
    else:
        doc = clean_line_comments(texts, "#")
    if not doc or not name:
        return None
    return Function(
        ".".join([*scopes, name]),
        doc,
        node_text(source, node),
        node.start_point.row + 1,
        bool(scopes) or node.type == "singleton_method",
    )


EXTRACTORS = {
    "python": _python,
    "java": _java,
    "javascript": _javascript,
    "go": _go,
    "php": _php,
    "ruby": _ruby,
}
