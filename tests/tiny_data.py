"""A tiny, learnable prepared data directory.

Queries and code name the same things with different words (a fixed, arbitrary mapping), so an
untrained encoder ranks near chance and training has something to learn.
"""

from __future__ import annotations

import random
from pathlib import Path

from codesearch.data.prepared import PreparedWriter
from codesearch.data.schema import PairRecord, make_id

NOUNS = [
    "apple",
    "river",
    "socket",
    "matrix",
    "window",
    "cookie",
    "ticket",
    "planet",
    "folder",
    "engine",
    "garden",
    "signal",
    "bridge",
    "camera",
    "pencil",
    "rocket",
    "cursor",
    "wallet",
    "castle",
    "violin",
    "tunnel",
    "magnet",
    "sensor",
    "ladder",
]
VERBS = [
    "open",
    "close",
    "count",
    "parse",
    "merge",
    "split",
    "render",
    "encode",
    "sort",
    "clean",
    "load",
    "store",
]


CODE_NAME = {w: f"{w[::-1]}z" for w in NOUNS + VERBS}  # "apple" -> "elppaz"


def tiny_records(language: str, n: int, seed: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        verb, a, b = rng.choice(VERBS), rng.choice(NOUNS), rng.choice(NOUNS)
        query = f"{verb} the {a} with the {b} and return it"
        v, x, y = CODE_NAME[verb], CODE_NAME[a], CODE_NAME[b]
        code = f"def {v}_{i}({x}, {y}):\n    result = {v}({x}, {y})\n    return result\n"
        out.append((f"repo{i % 12}", query, code))
    return out


def write_tiny_data(
    out: Path, languages=("python", "ruby"), n_train: int = 96, n_eval: int = 24
) -> Path:
    with PreparedWriter(out) as writer:
        for li, language in enumerate(languages):
            for si, (split, n) in enumerate(
                (("train", n_train), ("valid", n_eval), ("test", n_eval))
            ):
                rows = tiny_records(language, n, seed=100 * li + si)
                writer.write_split(
                    language,
                    split,
                    [
                        PairRecord(
                            id=make_id(language, split, str(i)),
                            language=language,
                            repo=f"{split}-{repo}",
                            path="m.py",
                            func_name=f"f{i}",
                            query=q,
                            code=c,
                            url="",
                            split=split,
                        )
                        for i, (repo, q, c) in enumerate(rows)
                    ],
                )
        writer.finish(builder="tiny-test")
    return out
