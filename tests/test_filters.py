"""CodeSearchNet / CodeXGLUE cleaning rules: summaries, query and code drop reasons."""

from __future__ import annotations

import pytest

from codesearch.data.filters import (
    code_drop_reason,
    first_paragraph,
    is_test_path,
    normalize_code_for_dedup,
    query_drop_reason,
    tokenize,
)

LONG_CODE = """\
def area(width, height):
    if width < 0 or height < 0:
        raise ValueError("negative size")
    return width * height
"""


def test_tokenize_splits_words_and_punctuation():
    assert tokenize("Returns the x-axis (in px).") == [
        "Returns",
        "the",
        "x",
        "-",
        "axis",
        "(",
        "in",
        "px",
        ")",
        ".",
    ]
    assert tokenize("get_value2 ok") == ["get_value2", "ok"]
    assert tokenize("   ") == []


# ---------------------------------------------------------------- first_paragraph


@pytest.mark.parametrize(
    "docstring, language, expected",
    [
        ("Adds two numbers.\n\nMore details here.", "python", "Adds two numbers."),
        ("Adds two\n   numbers   together.\nArgs:\n  a: x", "python", "Adds two numbers together."),
        ("Adds.\n:param a: first\n:returns: sum", "python", "Adds."),
        ("Adds numbers.\nReturns: the sum", "python", "Adds numbers."),
        ("Adds numbers.\nParameters\n----------\na : int", "python", "Adds numbers."),
        ("Adds numbers.\n>>> add(1, 2)\n3", "python", "Adds numbers."),
        ("Adds numbers.\n.. note:: careful", "python", "Adds numbers."),
        ("Uses :func:`add` to\nsum things.", "python", "Uses :func:`add` to sum things."),
        ("Adds two ints.\n@param a first\n@return the sum", "java", "Adds two ints."),
        ("Returns the sum.\n<p>\nMore text.", "java", "Returns the sum."),
        ("<p>Returns the sum.</p><p>More.</p>", "java", "Returns the sum."),
        ("Returns a {@link List} of {@code int} values.", "java", "Returns a List of int values."),
        ("See {@link #size() the size} and {@link Foo#bar}.", "java", "See the size and Foo.bar."),
        ("{@inheritDoc}", "java", ""),
        ("@param {string} a\n@returns {string}", "javascript", ""),
        ("@description Joins two strings.\n@param a", "javascript", "Joins two strings."),
        ("Joins strings.\n```js\njoin('a')\n```", "javascript", "Joins strings."),
        ("Formats a name.\n@param string $name", "php", "Formats a name."),
        ("Adds an item.\n\n@return [Cart] self", "ruby", "Adds an item."),
        ("Adds an item.\n== Examples\n  cart.add(x)", "ruby", "Adds an item."),
        (
            "Add returns the sum.\nDeprecated: use Sum.",
            "go",
            "Add returns the sum. Deprecated: use Sum.",
        ),
        ("\n\n  Leading blank lines.  \n", "go", "Leading blank lines."),
        ("Use `x + y` inline.", "python", "Use `x + y` inline."),
    ],
)
def test_first_paragraph(docstring, language, expected):
    assert first_paragraph(docstring, language) == expected


# ---------------------------------------------------------------- query_drop_reason


@pytest.mark.parametrize(
    "query, reason",
    [
        ("Adds numbers", "query_too_short"),
        ("", "query_too_short"),
        ("word " * 257, "query_too_long"),
        ("See https://example.com for details.", "query_has_url"),
        ("Mirrors www.example.org content.", "query_has_url"),
        ("Returns the <code>size</code> of it.", "query_has_html"),
        ("Returns a value<br/> always.", "query_has_html"),
        ("Escapes &lt; and &gt; characters.", "query_has_html"),
        ("Ends the list </custom> here.", "query_has_html"),
        ("获取用户信息列表", "query_not_english"),
        ("根据 id 获取用户 getUserById", "query_not_english"),
        ("ユーザーを取得する。", "query_not_english"),
        ("Возвращает значение поля.", "query_not_english"),
        ("Obtiene el valor del campo.", "query_not_english"),
        ("Gibt den Wert der Variable zurück.", "query_not_english"),
        ("Retourne la valeur de la clé.", "query_not_english"),
        ("[^'\\\\]+ ... ---", "query_not_english"),
    ],
)
def test_query_drop_reasons(query, reason):
    assert query_drop_reason(query) == reason


@pytest.mark.parametrize(
    "query",
    [
        "Adds two numbers.",
        "Returns a List<String> of the Map<K, V> keys.",  # generics are not HTML tags
        "Returns x if x < y and y > 0.",
        "Van der Corput sequence generator.",
        "Computes the σ and μ of the sample values.",  # Greek letters in math
        "Parses the config of Müller's tool and returns a dict.",
        "Deletes el from the list if del_flag is set.",
        "Sets the `x` attribute via set_x(value) on self.",
        "word " * 256,
    ],
)
def test_query_kept(query):
    assert query_drop_reason(query) is None


# ---------------------------------------------------------------- code_drop_reason


@pytest.mark.parametrize(
    "name, path",
    [
        ("test_area", "lib/geometry.py"),
        ("Geometry.testArea", "src/Geometry.java"),
        ("TestArea", "geometry.go"),
        ("area", "tests/geometry.py"),
        ("area", "pkg/test/geometry.py"),
        ("area", "src/__tests__/geometry.js"),
        ("area", "spec/geometry.rb"),
        ("area", "lib/test_geometry.py"),
        ("area", "lib/geometry_test.py"),
        ("area", "conftest.py"),
        ("Area", "geometry_test.go"),
        ("Geo.area", "src/main/GeometryTest.java"),
        ("Geo.area", "src/main/GeometryTests.java"),
        ("Geo.area", "src/GeometryTestCase.php"),
        ("area", "lib/geometry_spec.rb"),
        ("area", "src/geometry.test.js"),
        ("area", "src/geometry.spec.mjs"),
        ("area", "pkg\\testdata\\geo.go"),
    ],
)
def test_test_functions_dropped(name, path):
    assert code_drop_reason(name, LONG_CODE, path, "python") == "test_function"


@pytest.mark.parametrize(
    "name, path",
    [
        ("area", "lib/geometry.py"),
        ("Stats.latest", "src/Stats.java"),  # contains, but does not start with, "test"
        ("contest", "lib/contest.py"),
        ("Runner.run", "lib/unittest/runner.py"),  # a test framework's own code is library code
        ("area", "src/testing/helpers.go"),
    ],
)
def test_non_test_functions_kept(name, path):
    assert code_drop_reason(name, LONG_CODE, path, "python") is None
    assert not is_test_path(path)


@pytest.mark.parametrize(
    "code",
    [
        "def f(x): return x",
        "def f(x):\n\n    return x\n\n",  # blank lines do not count
        "def x\n  @x\nend",  # three lines but only a handful of tokens
        "",
    ],
)
def test_short_code_dropped(code):
    assert code_drop_reason("f", code, "lib/a.py", "python") == "code_too_short"


def test_normalize_code_for_dedup_collapses_whitespace_only():
    a = "def f(x):\n    return x + 1\n"
    b = "def f(x):\n\treturn x + 1"
    assert normalize_code_for_dedup(a) == normalize_code_for_dedup(b) == "def f(x): return x + 1"
    assert normalize_code_for_dedup("return x+1") != normalize_code_for_dedup("return x + 1")
