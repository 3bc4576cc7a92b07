"""The augment stage: augmented copies of the training documents, beside the originals, in
augment/train.jsonl.gz. Validation and test are never read or written here (tokenize reads
them from the stage before), so no augmented text can reach a held-out split.

Each copy keeps every field of its original (its label too) and adds `augmented_from` (the original's
id), `operation` and `rate`; it shares its original's `cluster`, so anything that groups by
cluster keeps the two together. augment/ledger.json counts copies made per operation and those
dropped because the operation left the text unchanged (a text without a known word, say).

An operation that needs a trained model (paraphrase) gets it from a provider that a higher layer
registers with `provide` (evaluate/paraphrase.py, imported by the flow): this package cannot
import the code that loads models.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmforge.augment.ops import NEEDS_MODEL, NEEDS_SPELLING, NEEDS_SYNONYMS, Resources, apply, check_rate
from lmforge.augment.spelling import corpus_variants, invert
from lmforge.augment.synonyms import neighbours
from lmforge.config.schema import AugmentConfig
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_write_json, read_jsonl_gz, write_jsonl_gz

FOLDER = "augment"
# operation name -> what readies its model in the resources (registered from a higher layer)
PROVIDERS: dict[str, Callable[[AugmentConfig, Resources], None]] = {}


def provide(name: str, provider: Callable[[AugmentConfig, Resources], None]) -> None:
    """Register what readies a model-backed operation; called by the layer that can load models."""
    PROVIDERS[name] = provider


def output(run: RunDir) -> Path:
    return run.root / FOLDER / "train.jsonl.gz"


def resources(cfg: AugmentConfig, texts: list[str]) -> Resources:
    """Look-up tables the configured operations need, and only those."""
    names = {op.name for op in cfg.operations}
    res = Resources(mask_token=cfg.mask_token)
    if names & set(NEEDS_SYNONYMS):
        res.synonyms = neighbours(texts, vocab=cfg.synonym_vocab)
    if names & set(NEEDS_SPELLING):
        res.to_early = corpus_variants(cfg.spelling_pairs)
        res.to_modern = invert(dict(res.to_early))
    for name in sorted(names & set(NEEDS_MODEL)):
        if name not in PROVIDERS:
            raise LmforgeError(f"the {name} operation needs a trained model, and nothing that loads one is registered",
                               "run it through `lmforge augment`, `lmforge run` or `lmforge compare augmentation`")
        PROVIDERS[name](cfg, res)
    return res


def augment_records(records: list[dict[str, Any]], cfg: AugmentConfig, res: Resources
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The augmented copies of `records` and the counts per operation. Seeded per record and
    operation, so a copy does not change when other records or operations are added."""
    out: list[dict[str, Any]] = []
    counts: dict[str, Counter[str]] = {}
    for op in cfg.operations:
        check_rate(op.rate)
        tally = counts.setdefault(op.name, Counter())
        for rec in records:
            for k in range(op.copies):
                rng = random.Random(f"{cfg.seed}:{op.name}:{op.rate}:{rec.get('id')}:{k}")
                text = apply(op.name, rec["text"], op.rate, rng, res)
                if text == rec["text"]:
                    tally["unchanged"] += 1
                    continue
                copy = {**rec, "id": f"{rec.get('id')}#{op.name}-{k}", "text": text,
                        "augmented_from": rec.get("id"), **res.provenance.get(op.name, {}),
                        "operation": op.name, "rate": op.rate, "cluster": rec.get("cluster") or rec.get("id")}
                out.append(copy)
                tally["made"] += 1
    return out, {name: dict(c) for name, c in counts.items()}


def run_augment(run: RunDir, cfg: AugmentConfig, source: Path | None = None) -> dict[str, Any]:
    """Read the training split (`source`, else the data stage's), write originals + copies and the ledger."""
    if not cfg.operations:
        raise LmforgeError("augment.operations is empty: nothing to do",
                           "name at least one, e.g. augment.operations='[{name: swap, rate: 0.1}]'")
    path = run.require(source or run.split_file("train"), "data")
    records = list(read_jsonl_gz(path))
    if any(r.get("split", "train") != "train" for r in records):
        raise LmforgeError(f"{path} holds records of other splits", "augment reads the training split only")
    res = resources(cfg, [r["text"] for r in records])
    copies, counts = augment_records(records, cfg, res)
    (run.root / FOLDER).mkdir(parents=True, exist_ok=True)
    n = write_jsonl_gz(output(run), [*records, *copies])
    ledger = {"input": str(path), "originals": len(records), "copies": len(copies), "records": n,
              "operations": counts, "rates": {op.name: op.rate for op in cfg.operations},
              "synonym_words": len(res.synonyms), "spelling_variants": len(res.to_early),
              **({"provenance": res.provenance} if res.provenance else {})}
    made = [f"{k}: {v.get('made', 0)}" for k, v in counts.items()]
    atomic_write_json(run.root / FOLDER / "ledger.json", ledger)
    console.print(f"augment: {len(records)} training records + {len(copies)} copies "
                  f"({', '.join(made)})")
    return ledger
