"""The one record type of the data stage: a document as it passes from step to step and lands
in data/{split}.jsonl.gz (kept) or data/rejected/ (dropped, with its rule and reason)."""

from __future__ import annotations

from typing import Any, TypedDict


class Record(TypedDict, total=False):
    """A document. Sources may add metadata fields of their own beside these (kept as they are)."""

    id: str
    text: str
    source: str
    label: Any
    tokens: int  # estimated token count (for mixing budgets)
    cluster: str  # near-duplicate cluster id, when dedup clusters instead of removing
    split: str  # train / val / test, once split
    rule: str  # rejected records: the rule that dropped it ...
    reason: str  # ... and why, in words
