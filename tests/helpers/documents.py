"""Small synthetic corpora of verse-like documents (the tokens and compare tests), written into a run
directory's split files as the data stage would."""

from __future__ import annotations

import random
from pathlib import Path

from lmforge.rundir import RunDir, write_jsonl_gz

WORDS = ["the", "king", "queen", "lord", "lady", "sword", "crown", "night", "day", "love", "death", "heart", "hand", "eye", "blood", "sweet", "fair", "good", "noble", "gentle", "speak", "come", "go", "know", "say", "tell", "hear", "see", "make"]


def sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + rng.choice([".", "!", "?", ","])


def document(rng: random.Random, lines: int = 20) -> str:
    speaker = rng.choice(["ROMEO", "JULIET", "HAMLET", "LEAR"])
    return f"{speaker}:\n" + "\n".join(sentence(rng) for _ in range(lines)) + "\n"


def make_docs(n: int, seed: int = 0, sources: tuple[str, ...] = ("a", "b"), prefix: str = "d") -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"{prefix}{i}", "source": sources[i % len(sources)], "text": document(rng)} for i in range(n)]


def write_run(root: Path, splits: dict[str, list[dict]]) -> RunDir:
    run = RunDir(root)
    run.create()
    for name in ("train", "val", "test"):
        write_jsonl_gz(run.split_file(name), splits.get(name, []))
    return run
