"""The pair record every part of codesearch reads.

A pair is (query, code): the first paragraph of a function's doc comment and the function
without that doc comment, as in CodeSearchNet (Husain et al. 2019, arXiv 1909.09436). Sentence
pairs (STS-B, NLI triplets) use the same record under the language ``english``: query = the
first sentence (the anchor), code = the second (its positive), with two optional fields,
``score`` (the gold similarity of an evaluation pair) and ``negative`` (a hard-negative
sentence). The manifest's ``task`` says which kind a prepared directory holds (docs/data.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from codesearch.errors import DataError, UserError

LANGUAGES = ("ruby", "javascript", "go", "python", "java", "php")  # "all" means these six
SENTENCE_LANGUAGE = "english"  # the one "language" of sentence-pair data
KNOWN_LANGUAGES = LANGUAGES + (SENTENCE_LANGUAGE,)
TASKS = {"code-search": LANGUAGES, "sentence-similarity": (SENTENCE_LANGUAGE,)}
SPLITS = ("train", "valid", "test")
CANDIDATE_SPLIT = "codebase"  # a separate candidate set (CodeXGLUE); optional
ALL_SPLITS = SPLITS + (CANDIDATE_SPLIT,)

LANGUAGE_ALIASES = {"js": "javascript", "golang": "go", "py": "python", "rb": "ruby"}


@dataclass(frozen=True)
class PairRecord:
    id: str  # stable and unique within a prepared directory
    language: str  # one of LANGUAGES
    repo: str  # the split unit: repository, package, or package/module
    path: str  # file path inside repo
    func_name: str
    query: str  # first paragraph of the doc comment ("" allowed only in the codebase split)
    code: str  # the function without its doc comment
    url: str  # where known, else ""
    split: str  # one of ALL_SPLITS
    score: float | None = None  # sentence pairs: gold similarity (STS-B: 0-5), evaluation pairs
    negative: str | None = None  # sentence pairs: a hard negative for the query (NLI triplets)

    def to_dict(self) -> dict:
        """The jsonl object: the optional fields only when set (code pairs are unchanged)."""
        out = dataclasses.asdict(self)
        for name in OPTIONAL_FIELDS:
            if out[name] is None:
                del out[name]
        return out


OPTIONAL_FIELDS = ("score", "negative")
FIELDS = tuple(f.name for f in dataclasses.fields(PairRecord) if f.name not in OPTIONAL_FIELDS)


def normalize_language(name: str) -> str:
    """Map a user-given language name to its canonical form, or raise UserError."""
    key = name.strip().lower()
    key = LANGUAGE_ALIASES.get(key, key)
    if key not in KNOWN_LANGUAGES:
        raise UserError(f"unknown language '{name}': expected one of {', '.join(KNOWN_LANGUAGES)}")
    return key


def parse_languages(names: str | list[str] | None) -> list[str]:
    """Parse 'python,go' / ['python', 'go'] / None (all) into canonical language names."""
    if names is None or names == "all" or names == ["all"]:
        return list(LANGUAGES)
    if isinstance(names, str):
        names = names.split(",")
    out = []
    for name in names:
        for part in name.split(","):
            if part.strip():
                lang = normalize_language(part)
                if lang not in out:
                    out.append(lang)
    if not out:
        raise UserError("no language given")
    return out


def make_id(language: str, *parts: str) -> str:
    """A stable id: the language and a 16-hex-digit hash of the identifying parts."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]
    return f"{language}-{digest}"


def check_text(value: object, path: str | None, line: int | None, name: str) -> str:
    """``value`` if it is a string that UTF-8 can hold, else a DataError naming the field. JSON's
    escapes can spell a lone surrogate (``"\\ud800"``), which no file or tokenizer accepts."""
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", path, line, name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(
            f"holds a lone surrogate (U+{ord(value[exc.start]):04X} at character "
            f"{exc.start + 1}), which is not text",
            path,
            line,
            name,
        ) from None
    return value


def record_from_dict(obj: object, path: str | None = None, line: int | None = None) -> PairRecord:
    """Validate one decoded jsonl object against the schema; DataError names the field."""
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", path, line)
    values = {}
    for name in FIELDS:
        if name not in obj:
            raise DataError("missing", path, line, name)
        values[name] = check_text(obj[name], path, line, name)
    if values["language"] not in KNOWN_LANGUAGES:
        raise DataError(f"unknown language '{values['language']}'", path, line, "language")
    if values["split"] not in ALL_SPLITS:
        raise DataError(
            f"expected one of {', '.join(ALL_SPLITS)}, got '{values['split']}'", path, line, "split"
        )
    # a codebase entry is a candidate only: it may have no query (CodeXGLUE empties them)
    required = ("id", "code") if values["split"] == CANDIDATE_SPLIT else ("id", "query", "code")
    for name in required:
        if not values[name].strip():
            raise DataError("empty", path, line, name)
    if obj.get("score") is not None:
        score = obj["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or score != score:
            raise DataError(f"expected a number, got {score!r:.40}", path, line, "score")
        values["score"] = float(score)
    if obj.get("negative") is not None:
        values["negative"] = check_text(obj["negative"], path, line, "negative")
        if not values["negative"].strip():
            raise DataError("empty", path, line, "negative")
    return PairRecord(**values)
