"""Download CodeSearchNet and write a prepared data directory (needs the internet).

Two routes:

- ``--via zenodo`` (default): the original release, mirrored on Zenodo record 7857872 as
  ``<language>.zip`` (``<language>/final/jsonl/{train,valid,test}/*.jsonl.gz``; the original
  S3 bucket answers 403). With ``--format codexglue`` (default) the cleaned CodeXGLUE /
  GraphCodeBERT version is rebuilt from it: GraphCodeBERT's ``codesearch/dataset.zip`` holds
  the url lists ``<language>/{train,valid,test,codebase}.txt`` of the cleaned splits, and its
  preprocess.py keeps, in list order, the release records whose url is listed (codebase: from
  the valid and test files, docstrings emptied). We do the same selection here (keeping the
  valid/test code, which the reader would otherwise take back from the codebase), then run
  ``codesearch prepare codexglue``. ``--format csn`` reads the release with
  ``codesearch prepare csn`` (our own filters) instead.
- ``--via hub``: ``codesearch prepare hub`` (the Hugging Face data set ``code_search_net``).

Downloads show a progress bar, are checked against the md5 that Zenodo's API lists for each
file (``--no-verify`` to skip), and are kept in ``--work`` so that a rerun does not fetch them
again.

    python data_prep/fetch_codesearchnet.py --out data/csn --languages python ruby
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from codesearch.data.jsonl_reader import read_jsonl
from codesearch.data.prepared import file_digest
from codesearch.data.readers.codexglue import prepare_codexglue
from codesearch.data.readers.csn import csn_files, prepare_csn
from codesearch.data.schema import SPLITS, parse_languages
from codesearch.errors import UserError

ZENODO_RECORD = "7857872"
ZENODO_FILES = f"https://zenodo.org/records/{ZENODO_RECORD}/files"
ZENODO_API = f"https://zenodo.org/api/records/{ZENODO_RECORD}"
CLEANING_URL = (
    "https://github.com/microsoft/CodeBERT/raw/master/GraphCodeBERT/codesearch/dataset.zip"
)
LIST_SPLITS = ("train", "valid", "test", "codebase")


def zenodo_checksums(api_url: str = ZENODO_API) -> dict[str, str]:
    """{file name: md5 hex} from the Zenodo record's API entry; {} if it cannot be read."""
    try:
        with urllib.request.urlopen(api_url, timeout=60) as response:
            record = json.load(response)
        files = record.get("files", [])
        if isinstance(files, dict):  # the newer API nests the list under "entries"
            files = list(files.get("entries", {}).values())
        return {
            f["key"]: f["checksum"].split(":", 1)[1]
            for f in files
            if f.get("checksum", "").startswith("md5:")
        }
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        print(
            f"warning: cannot read checksums from {api_url} ({exc}); downloads are not verified",
            file=sys.stderr,
        )
        return {}


def md5_file(path: Path) -> str:
    return file_digest(path, algorithm="md5")


def download(url: str, dest: Path, md5: str | None = None) -> Path:
    """Fetch url to dest (through dest.part) with a progress bar; verify md5 when given."""
    if dest.is_file() and (md5 is None or md5_file(dest) == md5):
        print(f"have {dest}", file=sys.stderr)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as handle:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr
            ) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    handle.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise UserError(f"cannot download {url}: {exc}") from None
    verify(part, md5, digest.hexdigest(), url)
    part.replace(dest)
    return dest


def verify(path: Path, expected: str | None, actual: str, url: str) -> None:
    if expected is not None and actual != expected:
        path.unlink(missing_ok=True)
        raise UserError(
            f"{url}: md5 {actual} does not match the published {expected} "
            f"(download deleted; run again)"
        )


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a .zip or .tar(.gz) into dest, refusing members that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            _check_members(archive, root, names)
            zf.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            _check_members(archive, root, tf.getnames())
            tf.extractall(dest, filter="data")
    else:
        raise UserError(f"{archive}: not a zip or tar archive")
    return dest


def _check_members(archive: Path, root: Path, names: list[str]) -> None:
    for name in names:
        target = (root / name).resolve()
        if target != root and root not in target.parents:
            raise UserError(f"{archive}: member '{name}' would be written outside {root}")


def find_url_lists(root: Path, languages: list[str]) -> dict[str, Path]:
    """{language: directory holding its train/valid/test/codebase.txt} under root."""
    found = {p.parent.name: p.parent for p in root.rglob("codebase.txt")}
    missing = [lang for lang in languages if lang not in found]
    if missing:
        raise UserError(f"{root}: no url lists (<language>/codebase.txt) for {', '.join(missing)}")
    return {lang: found[lang] for lang in languages}


def build_codexglue_layout(raw: Path, lists: dict[str, Path], out: Path) -> dict:
    """Write out/<language>/{train,valid,test,codebase}.jsonl: the release records whose url
    is in <split>.txt, in list order (codebase from valid+test, docstrings emptied), as
    GraphCodeBERT's preprocess.py does; valid/test keep their code."""
    files = csn_files(raw, list(lists))
    report: dict[str, dict] = {}
    for language, list_dir in lists.items():
        by_split: dict[str, dict[str, dict]] = {split: {} for split in SPLITS}
        for split, paths in files.get(language, {}).items():
            for path in paths:
                for obj in read_jsonl(path, lambda o, p, n: o if isinstance(o, dict) else None):
                    if isinstance(obj.get("url"), str):
                        by_split[split][obj["url"]] = obj
        pools = {**by_split, "codebase": {**by_split["valid"], **by_split["test"]}}
        target = out / language
        target.mkdir(parents=True, exist_ok=True)
        report[language] = {}
        for split in LIST_SPLITS:
            urls = [
                u.strip()
                for u in (list_dir / f"{split}.txt")
                .read_text(encoding="utf-8", errors="replace")
                .splitlines()
                if u.strip()
            ]
            pool = pools[split]
            with open(target / f"{split}.jsonl", "w", encoding="utf-8") as handle:
                kept = 0
                for url in urls:
                    if url in pool:
                        obj = pool[url]
                        if split == "codebase":  # as GraphCodeBERT: candidates carry no query
                            obj = {**obj, "docstring": "", "docstring_tokens": []}
                        handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
                        kept += 1
            report[language][split] = {"listed": len(urls), "found": kept}
    return report


def fetch_zenodo(
    out: Path,
    work: Path,
    languages: list[str],
    fmt: str,
    verify_md5: bool,
    cleaning_url: str = CLEANING_URL,
    text_from: str = "original",
) -> dict:
    checksums = zenodo_checksums() if verify_md5 else {}
    raw = work / "raw"
    for language in languages:
        name = f"{language}.zip"
        archive = download(
            f"{ZENODO_FILES}/{name}?download=1", work / "downloads" / name, checksums.get(name)
        )
        if not (raw / language).is_dir():
            # unpack beside, then move the language directory in: no half-extracted tree
            partial = work / f"{language}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            extract(archive, partial)
            if not (partial / language).is_dir():
                raise UserError(f"{archive}: no '{language}/' directory in it")
            raw.mkdir(parents=True, exist_ok=True)
            (partial / language).replace(raw / language)
            shutil.rmtree(partial)
    if fmt == "csn":
        return prepare_csn(raw, out, languages=languages)
    lists_zip = download(cleaning_url, work / "downloads" / "graphcodebert-codesearch.zip")
    lists_dir = extract(lists_zip, work / "cleaning")
    cleaned = work / "codexglue"
    shutil.rmtree(cleaned, ignore_errors=True)
    report = build_codexglue_layout(raw, find_url_lists(lists_dir, languages), cleaned)
    for language, splits in report.items():
        print(
            f"{language}: "
            + ", ".join(f"{s} {v['found']:,}/{v['listed']:,}" for s, v in splits.items())
            + " urls found",
            file=sys.stderr,
        )
    return prepare_codexglue(cleaned, out, languages=languages, text_from=text_from)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="prepared data directory to write")
    parser.add_argument(
        "--via",
        choices=("zenodo", "hub"),
        default="zenodo",
        help="where to download from (default zenodo)",
    )
    parser.add_argument(
        "--format",
        choices=("codexglue", "csn"),
        default="codexglue",
        help="zenodo: rebuild the cleaned CodeXGLUE splits (default) or read "
        "the release with our filters",
    )
    parser.add_argument(
        "--languages", nargs="+", default=None, help="e.g. python ruby (default: all six)"
    )
    parser.add_argument(
        "--work",
        default=".cache/codesearchnet",
        help="downloads and extracted files (default .cache/codesearchnet)",
    )
    parser.add_argument(
        "--cleaning-url", default=CLEANING_URL, help="archive with <language>/<split>.txt url lists"
    )
    parser.add_argument(
        "--text-from",
        choices=("original", "tokens"),
        default="original",
        help="codexglue: code text from original_string or ' '.join(code_tokens) (UniXcoder's "
        "run.py, which the published numbers used)",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the md5 check")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        languages = parse_languages(args.languages)
        if args.via == "hub":
            from codesearch.cli import main as codesearch_main

            return codesearch_main(["prepare", "hub", "--out", args.out, "--languages", *languages])
        manifest = fetch_zenodo(
            Path(args.out),
            Path(args.work),
            languages,
            args.format,
            verify_md5=not args.no_verify,
            cleaning_url=args.cleaning_url,
            text_from=args.text_from,
        )
    except UserError as error:
        print(f"fetch_codesearchnet: error: {error}", file=sys.stderr)
        return 2
    for language, counts in manifest["counts"].items():
        print(f"{language}: " + ", ".join(f"{s} {n:,}" for s, n in counts.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
