"""The data and the model of `make reproduce PROFILE=paper-tiny`: the paper profile's code path on
a CPU, with stand-ins for what needs the internet.

1. A tiny RoBERTa with random weights, built from a config, standing in for
   ``microsoft/unixcoder-base``: a byte-level BPE tokenizer trained on the fixture's training
   texts, with UniXcoder's special tokens (``<s> <pad> </s> <unk> <mask>`` and the mode token
   ``<encoder-only>``), and 2 layers of width 64; saved with ``save_pretrained`` to
   ``--model-out``, so it loads with ``AutoModel`` / ``AutoTokenizer`` like the real one.
2. ``codesearch prepare codexglue --text-from tokens`` of the cleaned-CodeXGLUE-format fixture
   (``experiments/fixtures/codexglue-tiny``, written by ``make_codexglue_fixture.py``) into
   ``--out``, the text UniXcoder's run.py uses.

The model is written first, so a prepared ``--out`` means the model is there too.

    python data_prep/prepare_paper_tiny.py --out data/paper-tiny --model-out data/paper-tiny-model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codesearch.data.jsonl_reader import read_jsonl
from codesearch.data.readers.codexglue import prepare_codexglue, split_file
from codesearch.data.readers.csn import print_summary
from codesearch.errors import UserError

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


def build_tiny_unixcoder(src: Path, out: Path, vocab_size: int = 3000, seed: int = 0) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        training_texts(src), vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL
    )
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default="experiments/fixtures/codexglue-tiny")
    parser.add_argument("--out", default="data/paper-tiny", help="prepared data directory")
    parser.add_argument("--model-out", default="data/paper-tiny-model", help="model folder")
    args = parser.parse_args(argv)
    try:
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
