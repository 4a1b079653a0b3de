"""Function / doc-comment extraction with tree-sitter, one block of cases per language."""

from __future__ import annotations

import random

import pytest

from codesearch.data.extract import (
    SOURCE_EXTENSIONS,
    Function,
    extract_functions,
    has_syntax_errors,
    parse,
    parser_for,
)
from codesearch.data.schema import LANGUAGES


def by_name(source: str, language: str) -> dict[str, Function]:
    return {f.name: f for f in extract_functions(source.encode("utf-8"), language)}


# ---------------------------------------------------------------- python

PYTHON = '''\
import functools


def top(a, b):
    """Add two numbers.

    Args:
        a: first.
    """

    total = a + b
    return total


def undocumented(x):
    return x  # no docstring: not returned


class Box:
    @functools.cache
    @staticmethod
    def make(size):
        # a comment before the docstring does not hide it
        """Make a box."""
        return Box()

    def oneliner(self): """Inline doc."""; return 1

    def only_doc(self):
        """Nothing else."""


def outer():
    """Outer doc."""
    def inner():
        """Inner doc."""
        return 2
    return inner


def not_doc():
    f"formatted {1}"
    return 3


def raw():
    r"""Raw \\d doc."""
    return 4


def semi():
    """Semi doc."""; x = 5
    return x
'''


def test_python_docstrings_names_and_methods():
    funcs = by_name(PYTHON, "python")
    assert set(funcs) == {
        "top",
        "Box.make",
        "Box.oneliner",
        "Box.only_doc",
        "outer",
        "outer.inner",
        "raw",
        "semi",
    }
    assert funcs["top"].docstring == "Add two numbers.\n\nArgs:\n    a: first."
    assert funcs["top"].line == 4 and not funcs["top"].is_method
    assert funcs["Box.make"].is_method and funcs["Box.oneliner"].is_method
    assert not funcs["outer.inner"].is_method
    assert funcs["raw"].docstring == "Raw \\d doc."


def test_python_docstring_removed_from_code():
    funcs = by_name(PYTHON, "python")
    top = funcs["top"].code
    assert top == "def top(a, b):\n    total = a + b\n    return total"
    make = funcs["Box.make"]
    assert make.code.startswith("@functools.cache\n    @staticmethod\n    def make(size):")
    assert "Make a box" not in make.code and "return Box()" in make.code
    assert make.line == 20  # the first decorator's line
    assert funcs["Box.oneliner"].code == "def oneliner(self): return 1"
    assert funcs["Box.only_doc"].code == "def only_doc(self):\n"
    assert funcs["semi"].code == "def semi():\n    x = 5\n    return x"
    outer = funcs["outer"].code
    assert "Outer doc" not in outer and '"""Inner doc."""' in outer  # only its own docstring
    for f in funcs.values():
        assert f.docstring not in f.code


# ---------------------------------------------------------------- java

JAVA = """\
package p;

/** The class. */
public class Outer {
    /**
     * Adds one.
     *
     * @param x the value
     */
    @Override
    public int add(int x) {
        return x + 1;
    }

    /** Builds it. */
    Outer() {}

    // a line comment is no Javadoc
    void plain() {}

    /* neither is a plain block comment */
    void block() {}

    @Deprecated
    /** Doc after the annotation. */
    public void old() {}

    /** Inner class method. */
    static class Inner { /** In inner. */ void m() {} }

    /** Separated by a line comment. */
    // TODO
    void separated() {}
}
"""


def test_java_methods_constructors_and_javadoc():
    funcs = by_name(JAVA, "java")
    assert set(funcs) == {"Outer.add", "Outer.Outer", "Outer.old", "Outer.Inner.m"}
    add = funcs["Outer.add"]
    assert add.docstring == "Adds one.\n\n@param x the value"
    assert add.code.startswith("@Override\n    public int add(int x) {")
    assert "Adds one" not in add.code and add.line == 10 and add.is_method
    assert funcs["Outer.Outer"].docstring == "Builds it."


def test_java_javadoc_after_annotation_is_cut_out_of_the_code():
    old = by_name(JAVA, "java")["Outer.old"]
    assert old.docstring == "Doc after the annotation."
    assert old.code == "@Deprecated\n    public void old() {}"


# ---------------------------------------------------------------- javascript

JAVASCRIPT = """\
/** Declared. */
function declared(a) {
  return a;
}

/** Generator. */
function* gen() { yield 1; }

/** Arrow. */
const arrow = (x) => x * 2;

/** Expression. */
var expr = function () { return 1; };

/** Exported. */
export function exported() {}

/** Exported arrow. */
export const exportedArrow = () => 1;

/** Assigned. */
Foo.prototype.bar = function () {};

function undocumented() {}

// not JSDoc
function lineCommented() {}

class Widget {
  /** Draws. */
  draw(ctx) { return ctx; }

  /** Static. */
  static create() {}
}

const api = {
  /** Pair. */
  get: function () {},
};

/** Only the first declarator. */
let one = 1, two = function () {};
"""


def test_javascript_functions_and_jsdoc():
    funcs = by_name(JAVASCRIPT, "javascript")
    assert set(funcs) == {
        "declared",
        "gen",
        "arrow",
        "expr",
        "exported",
        "exportedArrow",
        "Foo.bar",
        "Widget.draw",
        "Widget.create",
        "get",
    }
    assert funcs["declared"].code == "function declared(a) {\n  return a;\n}"
    assert funcs["arrow"].code == "const arrow = (x) => x * 2;"
    assert funcs["arrow"].line == 10 and not funcs["arrow"].is_method
    assert funcs["Widget.draw"].is_method and funcs["Foo.bar"].is_method
    assert funcs["Foo.bar"].code == "Foo.prototype.bar = function () {};"


def test_javascript_export_keyword_is_not_in_the_code_but_its_comment_is_the_doc():
    funcs = by_name(JAVASCRIPT, "javascript")
    assert funcs["exported"].docstring == "Exported."
    assert funcs["exported"].code == "function exported() {}"
    assert funcs["exportedArrow"].docstring == "Exported arrow."
    assert funcs["exportedArrow"].code == "const exportedArrow = () => 1;"


# ---------------------------------------------------------------- go

GO = """\
package main

// Add adds.
// It is documented on two lines.
//go:noinline
func Add(a, b int) int {
	return a + b
}

// Detached comment.

func Detached() {}

/* Block documents Block. */
func Block() {}

// Len returns the length.
func (s *Stack[T]) Len() int { return len(s.items) }

func Undocumented() {}

var x = 1 // a trailing comment is not a doc comment
func AfterTrailing() {}
"""


def test_go_functions_methods_and_comment_blocks():
    funcs = by_name(GO, "go")
    assert set(funcs) == {"Add", "Block", "Stack.Len"}
    assert funcs["Add"].docstring == "Add adds.\nIt is documented on two lines."
    assert funcs["Add"].code.startswith("func Add(a, b int) int {")
    assert "Add adds" not in funcs["Add"].code
    assert funcs["Block"].docstring == "Block documents Block."
    assert funcs["Stack.Len"].is_method and not funcs["Add"].is_method
    assert funcs["Stack.Len"].line == 18


def test_go_comment_separated_by_blank_line_is_not_taken():
    assert "Detached" not in by_name(GO, "go")


# ---------------------------------------------------------------- php

PHP = """\
<?php
namespace App;

/**
 * Formats a name.
 */
function format_name($name) { return ucfirst($name); }

class Repo {
    /**
     * Finds a user.
     * @param int $id
     */
    #[Route('/users')]
    public function find(int $id) { return $id; }

    #[Cached]
    /** Doc after the attribute. */
    public static function all() { return []; }

    // not a doc comment
    public function plain() {}
}
"""


def test_php_functions_and_methods_with_attributes():
    funcs = by_name(PHP, "php")
    assert set(funcs) == {"format_name", "Repo.find", "Repo.all"}
    find = funcs["Repo.find"]
    assert find.docstring == "Finds a user.\n@param int $id"
    assert find.code.startswith("#[Route('/users')]\n    public function find")
    assert find.is_method and not funcs["format_name"].is_method
    all_ = funcs["Repo.all"]
    assert all_.docstring == "Doc after the attribute."
    assert all_.code == "#[Cached]\n    public static function all() { return []; }"


# ---------------------------------------------------------------- ruby

RUBY = """\
module Shop
  class Cart
    # Adds an item.
    # Returns self.
    def add(item)
      @items << item
      self
    end

    # Builds an empty cart.
    def self.empty
      new
    end

    # Detached.

    def detached; end

=begin
Block doc.
=end
    def block_doc; end

    class << self
      # In the singleton class.
      def build; end
    end

    # Private one.
    private def secret
      1
    end

    def undocumented; end
  end
end

# Top level.
def helper; end
"""


def test_ruby_methods_singleton_methods_and_comments():
    funcs = by_name(RUBY, "ruby")
    assert set(funcs) == {
        "Shop.Cart.add",
        "Shop.Cart.self.empty",
        "Shop.Cart.block_doc",
        "Shop.Cart.self.build",
        "Shop.Cart.secret",
        "helper",
    }
    add = funcs["Shop.Cart.add"]
    assert add.docstring == "Adds an item.\nReturns self."
    assert add.code == "def add(item)\n      @items << item\n      self\n    end"
    assert add.line == 5 and add.is_method
    assert funcs["Shop.Cart.self.empty"].docstring == "Builds an empty cart."
    assert funcs["Shop.Cart.block_doc"].docstring == "Block doc."
    assert funcs["Shop.Cart.secret"].code.startswith("def secret")
    assert not funcs["helper"].is_method


# ---------------------------------------------------------------- shared behaviour

SAMPLES = {
    "python": PYTHON,
    "java": JAVA,
    "javascript": JAVASCRIPT,
    "go": GO,
    "php": PHP,
    "ruby": RUBY,
}


def test_every_language_has_extensions_and_a_sample():
    assert set(SOURCE_EXTENSIONS) == set(LANGUAGES) == set(SAMPLES)
    assert ".mjs" in SOURCE_EXTENSIONS["javascript"]


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_doc_comment_text_never_in_code(language):
    for f in extract_functions(SAMPLES[language].encode(), language):
        assert f.docstring and f.docstring.splitlines()[0] not in f.code


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_garbage_and_truncated_input_never_raise(language):
    source = SAMPLES[language].encode()
    rng = random.Random(0)
    for _ in range(30):
        cut = rng.randrange(len(source))
        broken = source[:cut] + bytes(rng.randrange(256) for _ in range(20)) + source[cut:]
        for f in extract_functions(broken, language):
            assert isinstance(f, Function)
    assert extract_functions(b"", language) == []
    assert extract_functions(b'\xff\xfe\x00garbage {{{ ((( """', language) == []


def test_broken_file_still_yields_its_good_functions():
    source = b'def ok():\n    """Fine."""\n    return 1\n\ndef broken(:\n    """Bad."""\n'
    assert has_syntax_errors(source, "python")
    assert "ok" in {f.name for f in extract_functions(source, "python")}
    assert not has_syntax_errors(PYTHON.encode(), "python")


def test_a_parsed_tree_can_be_reused():
    source = GO.encode()
    tree = parse(source, "go")
    assert extract_functions(source, "go", tree) == extract_functions(source, "go")
    assert has_syntax_errors(source, "go", tree) is False


def test_parsers_are_cached_and_unknown_languages_rejected():
    assert parser_for("python") is parser_for("python")
    with pytest.raises(ValueError, match="unsupported language 'cobol'"):
        parser_for("cobol")
    with pytest.raises(ValueError, match="unsupported language"):
        extract_functions(b"x", "rust")
