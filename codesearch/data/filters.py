"""Cleaning rules of CodeSearchNet (Husain et al. 2019) and CodeXGLUE code search.

The query of a pair is the first paragraph of the doc comment (`first_paragraph`): the text
up to the first blank line, a block-level HTML tag (`<p>`, `<pre>`, `<ul>`, ...), or the first
tag or section line (`@param`, `:param x:`, `Args:`, `Returns:`, a NumPy section underline,
`>>>`, `.. note::`, a Markdown / RDoc heading, a code fence); a JSDoc `@description` or
`@summary` tag that opens the comment gives the summary instead. Inline tags `{@link X}`,
`{@code X}` become `X` (a link's label where it has one), `{@inheritDoc}` goes, whitespace is
collapsed to single spaces.

Drop reasons, checked in this order (except that text mostly in another script is
`query_not_english` before its length is judged: an unspaced CJK sentence is one token);
the strings are the manifest's keys:

- `query_too_short`: fewer than 3 tokens (`tokenize`), e.g. an empty summary.
- `query_too_long`: more than 256 tokens.
- `query_has_url`: contains `http://`, `https://`, `ftp://`, `file://` or `www.`.
- `query_has_html`: contains an HTML tag of a known element (`<code>`, `<b>`, `<a href=..>`,
  ...), any closing tag `</x>`, an HTML comment or an entity (`&lt;`, `&#39;`). Generic
  types such as `List<String>` are not tags.
- `query_not_english`: no letter at all; or more than 10% of the letters are non-ASCII ones
  other than Greek (Cyrillic, CJK, Hangul, heavily accented Latin ...); or at least 2 words
  are function words of French, German, Spanish, Portuguese, Italian or Dutch that do not
  exist in English and they outnumber the English function words. A heuristic without a
  model: identifiers and code in English docs pass, whole sentences in those languages do not.
  Foreign words count once each (an identifier such as `der` repeats), English ones each time.

- `test_function` (code): the function's own name (last part of the qualified name) starts
  with `test` in any case, or the file is a test file: a directory named `test`, `tests`,
  `__tests__`, `__test__`, `spec`, `specs` or `testdata`, or a name like `test_*.py`,
  `*_test.py`, `conftest.py`, `*_test.go`, `*Test.java`, `*Tests.java`, `*TestCase.php`,
  `Test*.java`, `*_spec.rb`, `*_test.rb`, `*.test.js`, `*.spec.js`.
- `code_too_short` (code): fewer than 3 non-blank lines, or fewer than 15 tokens, in the
  code without its doc comment. CodeSearchNet drops functions under 3 lines; the token floor
  also drops 3-line getters such as `def x\\n  @x\\nend`.

`normalize_code_for_dedup` collapses whitespace so that copies which differ only in
indentation or line breaks count as exact duplicates.
"""

from __future__ import annotations

import re
import unicodedata

MIN_QUERY_TOKENS = 3
MAX_QUERY_TOKENS = 256
MIN_CODE_LINES = 3
MIN_CODE_TOKENS = 15
MAX_NON_ASCII_LETTER_SHARE = 0.10

_TOKEN = re.compile(r"\w+|[^\w\s]")

_BLOCK_TAG = re.compile(
    r"</?(?:p|pre|ul|ol|dl|table|blockquote|h[1-6]|div|hr)\b[^<>]*/?>", re.IGNORECASE
)
_INLINE_TAG = re.compile(r"\{@(\w+)\s*([^{}]*)\}")
_LINK_WITH_LABEL = re.compile(r"^(\S*\([^)]*\)|\S+)\s+(.+)$", re.DOTALL)
_SECTION_NAMES = (
    "Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Throws|Examples?|Notes?|"
    "Attributes|Keyword Args|Keyword Arguments|Other Parameters|See Also|Warnings?|Todo|"
    "References|Usage"
)
_TAG_LINE = re.compile(
    r"^(?:@[A-Za-z]"  # @param, @return: Javadoc, JSDoc, PHPDoc, YARD
    r"|:(?:param|parameter|arg|argument|key|keyword|type|raises?|except|exception|returns?"
    r"|rtype|yields?|ytype|var|ivar|cvar|vartype|meta)\b"  # Sphinx fields
    r"|:[\w-]+:(?!`)"  # :call-seq: (RDoc), other field lists; not a role like :func:`f`
    rf"|(?:{_SECTION_NAMES})\s*:"  # Google-style sections
    r"|>>>"  # doctest
    r"|\.\.\s+[\w-]+::"  # reST directive
    r"|```|~~~"  # Markdown code fence
    r"|#{1,6}\s|={1,6}\s)"  # Markdown / RDoc heading
)
_DESCRIPTION_TAG = re.compile(r"^@(?:description|desc|summary)\b\s*", re.IGNORECASE)  # JSDoc
_UNDERLINE = re.compile(r"^[-=~^]{3,}\s*$")  # NumPy-style section header underline

_URL = re.compile(r"(?:https?|ftp|file)://|\bwww\.\w", re.IGNORECASE)
_HTML_ELEMENTS = (
    "a|abbr|b|big|blockquote|body|br|caption|center|cite|code|col|dd|del|dfn|div|dl|dt|em|"
    "font|h[1-6]|head|hr|html|i|img|ins|kbd|li|ol|p|pre|q|s|samp|small|span|strike|strong|"
    "sub|sup|table|tbody|td|tfoot|th|thead|tr|tt|u|ul|var"
)
_HTML = re.compile(
    rf"<(?:{_HTML_ELEMENTS})(?:\s[^<>]*)?/?>"  # <code>, <br/>, <a href="...">
    r"|</[A-Za-z][\w-]*\s*>"  # any closing tag
    r"|<!--"
    r"|&(?:[a-zA-Z]{2,8}|#\d{1,6}|#x[0-9a-fA-F]{1,6});",  # &lt; &#39;
    re.IGNORECASE,
)

# Function words of other languages that are not English words; collisions with identifiers
# (`el`, `der`, `des`) are outweighed by the English function words of an English sentence.
_FOREIGN_WORDS = frozenset(
    """
    le la les de du une est sont pour dans avec sur qui que ce cette ces par pas ne au aux ou
    lorsque nous vous il elle leur
    el los las del una para por con se su sus al lo como este esta estos cuando
    uma os das dos em não ao seu sua é são
    der das und ist nicht ein eine einen dem den des mit von zu für auf wird werden oder wenn
    sich auch bei aus nach wie zum zur dieser diese dieses kann sind
    gli della delle dei di che sono nel nella questo questa viene
    het een voor niet met zijn wordt bij naar deze worden
""".split()
)
_ENGLISH_WORDS = frozenset(
    """
    the a an of to in is are be been for and or if this that these those with by from it its
    as on at not into when which will can should would may must all any each if then than
    returns return given used use was were has have no only one other such their there
""".split()
)
_WORD = re.compile(r"[^\W\d_]+")

_TEST_DIRS = frozenset({"test", "tests", "__tests__", "__test__", "spec", "specs", "testdata"})
_TEST_FILE = re.compile(
    r"^(?:test_.*|.*_test|.*_spec|conftest|tests?|.*[a-z0-9]Tests?|.*TestCase|Test[A-Z_].*)"
    r"\.\w+$"
    r"|\.(?:test|spec)\.[cm]?[jt]sx?$"
)
_NAME_SEPARATORS = re.compile(r"[.#:]+")


def tokenize(text: str) -> list[str]:
    """CodeSearchNet-like tokens: runs of word characters and single punctuation marks."""
    return _TOKEN.findall(text)


def _inline_tag(match: re.Match) -> str:
    tag, body = match.group(1), match.group(2).strip()
    if tag in ("link", "linkplain"):
        labelled = _LINK_WITH_LABEL.match(body)
        if labelled:
            return labelled.group(2)
        return body.lstrip("#").replace("#", ".")
    if tag == "inheritDoc":
        return ""
    return body  # {@code x}, {@literal x}, {@value X}


def first_paragraph(docstring: str, language: str) -> str:
    """The summary of a doc comment: its first paragraph on one line (rules: module doc).

    The rules are the same for every language at present; `language` is part of the API so
    that per-language rules can be added without changing the callers.
    """
    text = _INLINE_TAG.sub(_inline_tag, docstring)
    text = _BLOCK_TAG.sub("\n\n", text)
    kept: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            if kept:
                break
            continue
        description = _DESCRIPTION_TAG.match(line)
        if description and not kept:  # `@description The summary.` opens the paragraph
            line = line[description.end() :]
            if line:
                kept.append(line)
            continue
        if _UNDERLINE.match(line):
            if kept:
                kept.pop()  # the line above is the section's title
            break
        if _TAG_LINE.match(line):
            break
        kept.append(line)
    return " ".join(" ".join(kept).split())


def _is_foreign_letter(char: str) -> bool:
    return not char.isascii() and not unicodedata.name(char, "").startswith("GREEK")


def _foreign_script(query: str) -> bool:
    """More than 10% of the letters are non-ASCII ones other than Greek."""
    letters = [c for c in query if c.isalpha()]
    foreign_letters = sum(1 for c in letters if _is_foreign_letter(c))
    return foreign_letters > MAX_NON_ASCII_LETTER_SHARE * len(letters)


def _english_words(query: str) -> bool:
    """Has a letter, and foreign function words do not outnumber English ones."""
    words = [w.lower() for w in _WORD.findall(query)]
    if not words:
        return False
    foreign = len(_FOREIGN_WORDS.intersection(words))  # distinct: `der=0, (der)` counts once
    english = sum(1 for w in words if w in _ENGLISH_WORDS)
    return not (foreign >= 2 and foreign > english)


def query_drop_reason(query: str) -> str | None:
    """Why a query fails the CodeXGLUE filters (rules: module doc), or None to keep it."""
    if _foreign_script(query):  # before the length: an unspaced CJK sentence is one token
        return "query_not_english"
    n_tokens = len(tokenize(query))
    if n_tokens < MIN_QUERY_TOKENS:
        return "query_too_short"
    if n_tokens > MAX_QUERY_TOKENS:
        return "query_too_long"
    if _URL.search(query):
        return "query_has_url"
    if _HTML.search(query):
        return "query_has_html"
    if not _english_words(query):
        return "query_not_english"
    return None


def is_test_path(path: str) -> bool:
    """Whether a file path looks like test code (directory or file name conventions)."""
    parts = path.replace("\\", "/").split("/")
    if any(part.lower() in _TEST_DIRS for part in parts[:-1]):
        return True
    return bool(_TEST_FILE.search(parts[-1]))


def code_drop_reason(func_name: str, code: str, path: str, language: str) -> str | None:
    """Why a function fails the CodeSearchNet code filters (rules: module doc), or None."""
    own_name = _NAME_SEPARATORS.split(func_name)[-1]
    if own_name.lower().startswith("test") or is_test_path(path):
        return "test_function"
    n_lines = sum(1 for line in code.splitlines() if line.strip())
    if n_lines < MIN_CODE_LINES or len(tokenize(code)) < MIN_CODE_TOKENS:
        return "code_too_short"
    return None


def normalize_code_for_dedup(code: str) -> str:
    """The code with every run of whitespace made one space, for exact-duplicate detection."""
    return " ".join(code.split())
