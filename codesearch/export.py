"""`codesearch export RUN_DIR --out DIR`: a trained model as a self-contained
sentence-transformers folder with a model card, ready for the Hugging Face Hub.

The folder is the run's ``<task>/best`` (already a sentence-transformers model: query and
document routes, ``codesearch.st_layout.save_sentence_transformer``) plus a ``README.md``: the card
that sentence-transformers' own generator writes from its card data (front matter with
base_model, language, license, tags and a model-index of the ``--results`` evaluation, a
``codesearch evaluate --out`` file of this run's model), followed by what only codesearch
knows: the sampler and its options, the seed, the data (path, data_hash, counts), the package
versions, the evaluation protocol and table, the training config and how to load the model. ``--push-to-hub REPO`` uploads that folder with ``huggingface_hub``'s ``upload_folder``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from codesearch.config_sources import load_run_config
from codesearch.data.prepared import read_json_object
from codesearch.errors import UserError
from codesearch.evaluate import format_table, read_results
from codesearch.outputs import replace_dir, staging_dir

HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}  # our short names on the Hub
TABLE_METRICS = {
    "mrr": "cosine_mrr@1000",
    "recall@1": "cosine_recall@1",
    "recall@5": "cosine_recall@5",
    "recall@10": "cosine_recall@10",
    "ndcg@10": "cosine_ndcg@10",
}

CODESEARCH_SECTION = """
## codesearch

A dual encoder for code search (natural-language query -> code), trained with codesearch
(the reference implementation of Tail Batch Sampling, arXiv 2210.12874) from `{base}`,
sampler `{sampler}`, on {languages}. Queries and code have their own routes (and lengths):

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{load_path}")
queries = model.encode_query(["read a file line by line"])
codes = model.encode_document(["def read_lines(path):\\n    return open(path).read().splitlines()"])
scores = model.similarity(queries, codes)  # cosine: the embeddings are unit norm
```

### Evaluation

{evaluation}

### Training

- sampler `{sampler}`{sampler_options}
- seed {seed}, {num_processes} process(es), device {device}, mixed precision {precision}
- data: `{data_path}`, data_hash `{data_hash}`
- counts: {counts}
- packages: {packages}

The resolved training config (`codesearch train --config`):

```yaml
{config}```
"""


def codesearch_section(run_dir: Path, task: str, results: dict | None, load_path: str) -> str:
    """What only codesearch knows: how the model was trained (sampler and its options, seed,
    data hash and counts, packages, the config) and the evaluation protocol and table."""
    info = read_json_object(run_dir / "run_info.json")
    config = load_run_config(run_dir).to_dict()  # checked: a damaged file is one line
    if results is None:
        evaluation = "Not evaluated here: pass `--results` (a `codesearch evaluate --out` file)."
    else:
        evaluation = (
            f"MRR@1000 and recalls (x100), {results.get('protocol')} protocol (docs/evaluation.md "
            f"of codesearch), data `{results.get('data')}` (data_hash "
            f"`{results.get('data_hash')}`), precision {results.get('precision')}:\n\n"
            + format_table(results)
        )
    data = info.get("data") if isinstance(info.get("data"), dict) else {}
    packages = info.get("packages") if isinstance(info.get("packages"), dict) else {}
    packages = ", ".join(f"{k} {v}" for k, v in packages.items())
    sampler = config["sampler"]["name"]
    options = {
        k[len(sampler) + 1 :]: v
        for k, v in config["sampler"].items()
        if k.startswith(sampler + "_")
    }
    return CODESEARCH_SECTION.format(
        base=config["model"]["model"],
        sampler=sampler,
        sampler_options=f" ({', '.join(f'{k} {v}' for k, v in options.items())})"
        if options
        else "",
        languages=", ".join(config["data"]["languages"]),
        load_path=load_path,
        evaluation=evaluation,
        seed=info.get("seed"),
        num_processes=info.get("num_processes"),
        device=info.get("device"),
        precision=info.get("mixed_precision"),
        data_path=data.get("path"),
        data_hash=data.get("data_hash"),
        counts=json.dumps(data.get("counts")),
        packages=packages or "unknown",
        config=yaml.safe_dump(config, sort_keys=False),
    )


def model_card(
    folder: Path, run_dir: Path, task: str, results: dict | None, load_path: str, license: str
) -> str:
    """The README of the export: sentence-transformers' own card generator (front matter with
    base_model, language, license, library_name, pipeline_tag, tags and a model-index of the
    evaluation's MRR and recalls per language; the architecture) fed through its card data,
    then ``codesearch_section``."""
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.model_card import generate_model_card
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    config = load_run_config(run_dir)
    verbosity = transformers.logging.get_verbosity()
    # a folder saved without its encoders' poolers would report them missing: the card needs
    # no pooler, and the exported folder is a copy of the saved one, not this load
    transformers.logging.set_verbosity_error()
    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except (OSError, ValueError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"{run_dir}: the model of '{task}' does not load in sentence-transformers ({detail})"
        ) from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    card = model.model_card_data
    card.local_files_only = True  # no Hub lookups while writing a card
    base = HUB_IDS.get(config.model.model, config.model.model)
    if not Path(base).exists():  # a Hub id; a local folder has no Hub identity to name
        card.base_model = base
    card.set_language("en")
    card.set_license(license)
    card.model_name = f"codesearch {config.sampler.name} {task}"
    card.set_model_id(load_path)
    card.add_tags(["code-search", "codesearch", f"sampler-{config.sampler.name}"])
    if config.sampler.name == "tbs":
        card.add_tags("tail-batch-sampling")
    for language, row in (results or {}).get("languages", {}).items():
        name = f"codesearch-{language}"
        evaluator = InformationRetrievalEvaluator(
            {"q": "q"}, {"d": "d"}, {"q": {"d"}}, name=name
        )  # a label for the card: the numbers are codesearch evaluate's
        evaluator.primary_metric = f"{name}_{TABLE_METRICS['mrr']}"
        card.set_evaluation_metrics(
            evaluator, {f"{name}_{m}": float(row[k]) for k, m in TABLE_METRICS.items()}
        )
    return generate_model_card(model) + codesearch_section(run_dir, task, results, load_path)


def check_results_of(results: dict, path: str | Path, best: Path) -> None:
    """UserError unless every language of ``results`` was evaluated with the model ``best``
    (the export's ``<task>/best``): a card must not show another model's numbers. A path
    that no longer resolves (the run was moved) is compared by its last components."""
    expected = best.resolve()
    tail = best.parts[-3:]  # run directory name, task, best
    for language, row in results["languages"].items():
        model = row.get("model")
        if isinstance(model, str):
            found = Path(model)
            if found.resolve() == expected or (not found.exists() and found.parts[-3:] == tail):
                continue
        raise UserError(
            f"{path}: '{language}' was evaluated with the model {model!r}, not this run's "
            f"{best}; evaluate it with `codesearch evaluate --model {best.parent.parent} "
            "--out FILE`"
        )


def export_run(
    run_dir: str | Path,
    out: str | Path,
    task: str | None = None,
    results: str | Path | None = None,
    repo_id: str | None = None,
    license: str = "other",
) -> Path:
    """Write the export folder (module docstring); with ``repo_id``, upload it."""
    run_dir, out = Path(run_dir), Path(out)
    models = read_json_object(run_dir / "run.json").get("models")
    if not isinstance(models, dict) or not all(isinstance(v, str) for v in models.values()):
        raise UserError(
            f"{run_dir / 'run.json'}: expected 'models' {{task: folder}}, as `codesearch train` "
            "writes it"
        )
    if task is None:
        if len(models) != 1:
            raise UserError(f"{run_dir}: holds {', '.join(models)}; choose one with --language")
        task = next(iter(models))
    if task not in models:
        raise UserError(f"{run_dir}: no model '{task}' (it has: {', '.join(models)})")
    best = run_dir / models[task]
    if not (best / "modules.json").is_file():
        raise UserError(
            f"{best}: not a sentence-transformers folder (the nbow encoder has none; "
            "export a transformer run)"
        )
    if out.is_symlink() and not out.exists():
        raise UserError(f"{out}: a link to nothing ({os.readlink(out)}); choose another --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not an empty directory; choose another --out")
    evaluation = read_results(results) if results else None
    if evaluation is not None:
        check_results_of(evaluation, results, best)
    tmp = staging_dir(out)  # a new directory of this process's: the only one removed on error
    try:
        shutil.copytree(best, tmp, dirs_exist_ok=True)
        card = model_card(tmp, run_dir, task, evaluation, repo_id or str(out), license)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        shutil.copy2(run_dir / "config.yaml", tmp / "codesearch_train_config.yaml")
        replace_dir(tmp, out)  # an existing out is empty (checked above)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if repo_id is not None:
        push_to_hub(out, repo_id)
    return out


def push_to_hub(folder: Path, repo_id: str) -> None:
    """Upload ``folder`` to the Hub model repository ``repo_id`` (created if missing)."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model")
    except Exception as exc:  # network, authentication: the folder is written either way
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"{folder}: written, but the upload to {repo_id} failed ({detail})"
        ) from None
