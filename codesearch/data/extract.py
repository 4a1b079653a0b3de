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

from functools import cache

import tree_sitter
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_php
import tree_sitter_python
import tree_sitter_ruby

from codesearch.data.doc_comments import Comments, node_text
from codesearch.data.language_rules import EXTRACTORS, Function

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
    comments = Comments(source, captures.get("comment", []))
    extract_one = EXTRACTORS[language]
    out = []
    for node, scopes in _with_scopes(
        captures.get("function", []), captures.get("scope", []), language, source
    ):
        found = extract_one(node, scopes, source, comments)
        if found is not None:
            out.append(found)
    return out


def _scope_name(node: tree_sitter.Node, language: str, source: bytes) -> str:
    if node.type == "singleton_class":  # ruby `class << self`
        return node_text(source, node.child_by_field_name("value"))
    return node_text(source, node.child_by_field_name("name"))


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
                stack.append((-neg_end, node_text(source, node.child_by_field_name("name"))))
