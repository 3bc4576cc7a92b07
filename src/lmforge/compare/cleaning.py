"""`lmforge compare cleaning` (course topic 2): cleaning choices on one dirty corpus, each through
the real data stage, then the same short training and a score on the same clean held-out text.

The dirty corpus is the built-in one cut into passages, with known defects added by a seeded
generator, each passage labelled with what was done to it: exact copies, near copies (a few words
changed), junk (one line repeated, or letters at random), passages carrying an e-mail address and
a phone number, and records whose `topic` field is missing. Because every defect is labelled, the
table can say what each choice caught (documents rejected per kind) and what it cost (clean
passages lost), besides the downstream bits per byte on held-out plays no arm trained on.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.compare.cells import SEEDS, choose, command, pm, prepare, size_config, train_cell, with_keys
from lmforge.compare.output import cached_cell, pyplot, save_figure, write_table
from lmforge.config.schema import Config
from lmforge.console import console
from lmforge.evaluate.lm import bits_per_byte, token_losses
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text, read_jsonl_gz
from lmforge.tokens.tokenizer import load_tokenizer, token_byte_lengths
from lmforge.train.loop import Callback, Trainer

NAME = "cleaning"
PLAYS = {"tiny": 3, "small": 12}  # plays cut into the dirty corpus; two more are held out for scoring
PASSAGE_CHARS = {"tiny": 1200, "small": 2000}
SHARE = {"exact copy": 0.15, "near copy": 0.10, "junk": 0.10, "pii": 0.10, "missing topic": 0.05}
# the size's base data keys are replaced by the dirty corpus; every arm then sets its own choices
BASE = ["data.corpus=none", "data.max_docs=null", "data.strip_gutenberg=false", "data.min_chars=200",
        "data.dedup=none", "data.quality='off'", "data.pii=[]"]
ARMS: dict[str, tuple[list[str], str]] = {
    # arm: (data keys, what to do when the topic field is missing)
    "none": ([], "fill"),
    "exact dedup": (["data.dedup=exact"], "fill"),
    "near dedup": (["data.dedup=near"], "fill"),
    "quality books": (["data.quality=books"], "fill"),
    "quality web": (["data.quality=web"], "fill"),
    "PII masking": (["data.pii=[email,phone]"], "fill"),
    "missing: reject": ([], "reject"),
    "missing: majority": ([], "majority"),
    "all (near, books, PII, majority)": (["data.dedup=near", "data.quality=books", "data.pii=[email,phone]"],
                                         "majority"),
}
COLUMNS = ["arm", "documents kept", "rejected", "by rule", "duplicates left", "junk left", "PII left",
           "passages lost", "held-out bits/byte"]
EMAIL = re.compile(r"[\w.]+@example\.(?:com|org)")


def passages(text: str, size: int) -> list[str]:
    """Consecutive paragraphs joined until each passage reaches about `size` characters."""
    out, cur = [], ""
    for para in re.split(r"\n\s*\n", text):
        cur = f"{cur}\n\n{para}" if cur else para
        if len(cur) >= size:
            out.append(cur.strip())
            cur = ""
    return out


def near_copy(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, len(words) // 100)):  # about 95% of shingles kept
        words[i] = words[i][::-1]
    return " ".join(words)


def junk(rng: random.Random, n: int) -> str:
    if rng.random() < 0.5:
        return "\n".join(["Click here to subscribe now and win a free prize!"] * (n // 50))
    return " ".join("".join(rng.choice("qxzjkvwyfgh") for _ in range(rng.randint(2, 9))) for _ in range(n // 6))


def dirty_corpus(size: str, seed: int, folder: Path) -> tuple[Path, Path, dict[str, list[str]]]:
    """The dirty JSONL file, the held-out clean text, and each record's defect: {id: [kind, origin]}
    (origin: the passage an exact or near copy was made from)."""
    from lmforge.corpora.shakespeare import documents

    docs = documents(["shakespeare"], ["modern"])
    n = PLAYS[size]
    train_docs, held_docs = docs[:n], docs[n: n + 2]
    rng = random.Random(seed)
    clean = [(f"{d.id}#{i}", d.title, p) for d in train_docs
             for i, p in enumerate(passages(d.path.read_text(encoding="utf-8"), PASSAGE_CHARS[size]))]
    records: list[dict[str, Any]] = [{"id": i, "topic": t, "text": p} for i, t, p in clean]
    kinds = {i: ["clean", i] for i, _, _ in clean}
    count = {k: max(1, round(share * len(clean))) for k, share in SHARE.items()}
    # PII and a missing field change passages in place (disjoint ones); copies and junk are added
    changed = rng.sample(range(len(records)), count["pii"] + count["missing topic"])
    for j, idx in enumerate(changed):
        rec = records[idx]
        if j < count["pii"]:
            rec["text"] += f"\n\nWrite to reader{j}@example.com or call +1 415-555-{j:04d} for the full text."
            kinds[rec["id"]][0] = "pii"
        else:
            del rec["topic"]
            kinds[rec["id"]][0] = "missing topic"
    for kind in ("exact copy", "near copy", "junk"):
        for j in range(count[kind]):
            src_id, topic, text = rng.choice(clean)
            rid = f"{kind.replace(' ', '-')}-{j}"
            if kind == "exact copy":
                records.append({"id": rid, "topic": topic, "text": text})
            elif kind == "near copy":
                records.append({"id": rid, "topic": topic, "text": near_copy(text, rng)})
            else:
                records.append({"id": rid, "topic": "ads", "text": junk(rng, len(text))})
            kinds[rid] = [kind, src_id if kind != "junk" else rid]
    rng.shuffle(records)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "dirty.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    held = "\n\n".join(d.path.read_text(encoding="utf-8") for d in held_docs)
    atomic_write_text(folder / "heldout.txt", held)
    atomic_write_json(folder / "defects.json", kinds)
    return folder / "dirty.jsonl", folder / "heldout.txt", kinds


def outcome(kinds: dict[str, list[str]], kept: dict[str, str]) -> dict[str, int]:
    """What a cleaning choice left and lost. A passage and its copies form a group: every kept
    member beyond one is a duplicate left; a group with no member kept is a passage lost."""
    groups: dict[str, int] = {}
    for rid, (kind, origin) in kinds.items():
        if kind != "junk":
            groups[origin] = groups.get(origin, 0) + (rid in kept)
    return {"duplicates_left": sum(max(0, k - 1) for k in groups.values()),
            "passages_lost": sum(1 for k in groups.values() if k == 0),
            "junk_left": sum(1 for rid, (kind, _) in kinds.items() if kind == "junk" and rid in kept),
            "pii_left": sum(1 for t in kept.values() if EMAIL.search(t)),
            "duplicates_made": sum(1 for kind, _ in kinds.values() if kind in ("exact copy", "near copy")),
            "junk_made": sum(1 for kind, _ in kinds.values() if kind == "junk"),
            "pii_made": sum(1 for kind, _ in kinds.values() if kind == "pii"),
            "passages": len(groups)}


def arm_config(base: Config, arm: str, dirty: Path, seed: int) -> Config:
    keys, missing = ARMS[arm]
    cfg = with_keys(base, BASE + keys, seed)
    topic_rule: dict[str, Any] = {"action": missing, "type": "str"}
    if missing == "fill":
        topic_rule["value"] = "unknown"
    data = cfg.model_dump(mode="json")
    data["data"]["sources"] = [{"path": str(dirty.resolve()), "format": "jsonl", "fields": {"topic": topic_rule}}]
    data["data"]["seed"] = seed
    return Config.model_validate(data)


class HeldOut(Callback):
    """At the end of training: bits per byte of the held-out plays, in this arm's tokens."""

    def __init__(self, base: RunDir, run: RunDir, text: str, cfg: Config) -> None:
        self.base, self.run, self.text, self.cfg = base, run, text, cfg

    def on_train_end(self, trainer: Trainer) -> None:
        tok = load_tokenizer(self.base.tokenizer)
        ids = np.asarray(tok.encode(self.text, add_special_tokens=False).ids, dtype=np.int64)
        losses = token_losses(trainer.raw_model, ids, self.cfg.model.block_size, 32, self.cfg.eval.max_tokens)
        nbytes = float(token_byte_lengths(tok)[ids[1: len(losses) + 1]].sum())
        atomic_write_json(self.run.root / "heldout.json", {"bits_per_byte": bits_per_byte(float(losses.sum()), nbytes)})


def kept_ids(run: RunDir) -> dict[str, str]:
    """Every kept document's id and text, from the three splits."""
    return {r["id"]: r["text"] for split in ("train", "val", "test") for r in read_jsonl_gz(run.split_file(split))}


def measure(size: str, arm: str, seed: int, cfg: Config, out: Path, kinds: dict[str, list[str]], held: str
            ) -> dict[str, Any]:
    run = prepare(out / "arms" / f"{arm}-s{seed}", cfg)
    ledger = json.loads(run.ledger.read_text())
    left = outcome(kinds, kept_ids(run))
    folder = out / "cells" / f"{arm}-s{seed}"
    trained = train_cell(run, folder, cfg, monitoring=False,
                         extra=lambda r: [HeldOut(run, r, held, cfg)])
    heldout = json.loads((folder / "heldout.json").read_text())["bits_per_byte"]
    by_rule = {rule: info.get("documents", info.get("count", 0)) if isinstance(info, dict) else info
               for rule, info in (ledger.get("rules") or {}).items()}
    return {"kept": ledger["kept"], "rejected": ledger["rejected"], "in": ledger["in"], "by_rule": by_rule,
            **left,
            "pii_masked": ledger.get("pii_masked"), "filled": ledger.get("missing_values_filled"),
            "heldout_bpb": heldout, "train": {k: v for k, v in trained.items() if k != "curve"}}


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """Documents kept (bars) and held-out bits per byte (points) per arm."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    x = range(len(rows))
    ax.bar(x, [r["kept"] for r in rows], color="#9db4d8", label="documents kept")
    ax.set_ylabel("documents kept")
    ax.set_xticks(list(x), [r["arm"] for r in rows], rotation=25, ha="right", fontsize=8)
    ax2 = ax.twinx()
    ax2.plot(list(x), [r["bpb"] for r in rows], "o", color="#c44e52", label="held-out bits/byte")
    ax2.set_ylabel("held-out bits per byte")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower right")
    save_figure(fig, path)


def run(size: str, out: Path, overrides: list[str], only: list[str] | None = None,
        seeds: list[int] | None = None) -> dict[str, Any]:
    names = choose(list(ARMS), only, NAME)
    base = size_config(size, overrides)
    by_arm: dict[str, list[dict[str, Any]]] = {a: [] for a in names}
    for seed in seeds if seeds is not None else SEEDS[size]:
        dirty, held_path, kinds = dirty_corpus(size, seed, out / "corpus" / f"s{seed}")
        held = held_path.read_text(encoding="utf-8")
        for arm in names:
            cfg = arm_config(base, arm, dirty, seed)
            console.print(f"compare {NAME}: {arm}, seed {seed}")
            by_arm[arm].append(cached_cell(out, arm, seed, cfg.model_dump(mode="json"),
                                           command(NAME, size, arm, seed, out),
                                           lambda c=cfg, a=arm, s=seed, k=kinds, h=held: measure(size, a, s, c, out, k, h)))
    rows, plotted = [], []
    for arm, cells in by_arm.items():
        v = [c["values"] for c in cells]
        first = v[0]
        rules = ", ".join(f"{r} {n}" for r, n in first["by_rule"].items() if n) or "-"
        rows.append([arm, first["kept"], first["rejected"], rules,
                     f"{first['duplicates_left']}/{first['duplicates_made']}", f"{first['junk_left']}/{first['junk_made']}",
                     f"{first['pii_left']}/{first['pii_made']}", f"{first['passages_lost']}/{first['passages']}",
                     pm([x["heldout_bpb"] for x in v])])
        plotted.append({"arm": arm, "kept": first["kept"], "bpb": sum(x["heldout_bpb"] for x in v) / len(v)})
    notes = [("left / made: injected defects still in the kept documents (a passage and its exact or near copies "
             "count as one passage, every kept copy beyond one is a duplicate left; PII left: kept documents still "
             "showing an injected e-mail address); passages lost: passages of which no copy was kept (a rule removed "
             "good text); counts are the first seed's; bits per byte on two held-out plays no arm trained on "
             "(± one standard deviation over seeds)")]
    return write_table(out, NAME, "data cleaning: what each choice keeps, rejects and costs downstream", COLUMNS,
                       rows, [c for cells in by_arm.values() for c in cells], lambda p: figure(plotted, p), notes,
                       {"size": size})
