"""lmforge's data steps as datatrove pipeline steps: a reader, a cleaner and filters.

Filters subclass datatrove's BaseFilter, so every dropped document goes to an exclusion writer
with its rule and reason, and the same list of steps runs under datatrove's local, Slurm or Ray
executor. Per-document work only: steps that need the whole corpus (dedup, splits) run after.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from lmforge.config.schema import DataConfig
from lmforge.console import Ticker
from lmforge.data import clean, pii, quality
from lmforge.data.sources import Unit, read_unit
from lmforge.rundir import atomic_write_json


class UnitReader(PipelineStep):
    """Reads the units of this task (unit i goes to task i mod tasks) and counts what it read."""

    name = "lmforge sources"
    type = "📖 - READER"

    def __init__(self, units: list[Unit], counts_dir: str) -> None:
        super().__init__()
        self.units = units
        self.counts_dir = counts_dir

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: dict[str, Counter[str]] = {}
        mine = [u for u in range(len(self.units)) if u % world_size == rank]
        # documents flow through the whole pipeline as this reader yields them, so its count is
        # the phase's progress; the totals are in the ledger's funnel at the end
        task = f" (task {rank + 1}/{world_size})" if world_size > 1 else ""
        ticker = Ticker(f"data{task}", unit="documents read")
        for i, u in enumerate(mine):
            unit = self.units[u]
            ticker.note = f"input {i + 1}/{len(mine)}" if len(mine) > 1 else ""
            for r, item in enumerate(read_unit(unit)):
                ticker.advance()
                c = counts.setdefault(item.source, Counter())
                c["in"] += 1
                c["characters"] += len(item.text)
                meta: dict[str, Any] = {**item.meta, "source": item.source, "seq": [u, r]}
                if item.reason:
                    meta["_reject"] = [item.rule, item.reason]
                self.stat_update("documents")
                yield Document(text=item.text, id=item.id, metadata=meta)
        atomic_write_json(Path(self.counts_dir) / f"{rank:05d}.json", {k: dict(v) for k, v in counts.items()})


class Cleaner(PipelineStep):
    """Unicode, whitespace, HTML, Gutenberg boilerplate, mojibake and PII, in that order."""

    name = "lmforge clean"
    type = "✂️ - FORMAT"

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def clean(self, doc: Document) -> None:
        cfg, text = self.cfg, doc.text
        if cfg.fix_mojibake:
            text = clean.fix_mojibake(text)
        text = clean.normalize_unicode(text, cfg.normalize)
        if cfg.fullwidth:
            text = clean.fold_fullwidth(text)
        if cfg.strip_html:
            text, cut = clean.strip_html(text)
            if cut:
                doc.metadata["html_stripped"] = True
        if cfg.strip_gutenberg:
            text, cut = clean.strip_gutenberg(text)
            if cut:
                doc.metadata["gutenberg_stripped"] = True
        text = clean.normalize_whitespace(text)
        if cfg.pii:
            text, found = pii.mask(text, cfg.pii)
            if found:
                doc.metadata["pii"] = dict(found)
        doc.text = text

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            with self.track_time():
                self.clean(doc)
            yield doc


class RuleFilter(BaseFilter):
    """A filter whose verdicts carry lmforge's rule name and a human reason in the metadata."""

    rule = "rule"

    def verdict(self, doc: Document) -> tuple[str, str] | None:
        """(reason code, detail) to drop the document, or None to keep it."""
        raise NotImplementedError

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        out = self.verdict(doc)
        if out is None:
            return True
        code, detail = out
        doc.metadata["rule"] = self.rule
        doc.metadata["reason"] = detail
        return False, code


class ReadFilter(RuleFilter):
    """Drops records that could not be read (bad bytes, malformed lines, missing fields).

    They leave before the Cleaner, yet their preview and reason hold raw input (a malformed line
    is quoted), so PII is masked here the way the Cleaner masks kept documents."""

    name = "lmforge read errors"
    rule = "read"

    def __init__(self, pii_kinds: Iterable[str] = (), exclusion_writer: DiskWriter | None = None) -> None:
        super().__init__(exclusion_writer)
        self.pii_kinds = list(pii_kinds)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        bad = doc.metadata.pop("_reject", None)
        if bad is None:
            return True
        rule, reason = bad  # 'read', 'decode' or 'missing_value'
        if self.pii_kinds:
            doc.text, found = pii.mask(doc.text, self.pii_kinds)
            reason, in_reason = pii.mask(reason, self.pii_kinds)
            found.update(in_reason)
            if found:
                doc.metadata["pii"] = dict(found)
        doc.metadata["rule"], doc.metadata["reason"] = rule, reason
        return False, rule


class MinLengthFilter(RuleFilter):
    name = "lmforge min length"
    rule = "too_short"

    def __init__(self, min_chars: int, exclusion_writer: DiskWriter | None = None) -> None:
        super().__init__(exclusion_writer)
        self.min_chars = min_chars

    def verdict(self, doc: Document) -> tuple[str, str] | None:
        why = clean.too_short(doc.text, self.min_chars)
        return ("too_short", why) if why else None


class LanguageFilter(RuleFilter):
    """Language identification with py3langid, whose model ships inside its PyPI package.

    Always annotates `language` and `language_score` (for the diversity report); drops only when
    `languages` is set. The 0.65 default score is FineWeb's threshold for its fastText model."""

    name = "lmforge language"
    rule = "language"

    def __init__(self, languages: Iterable[str], threshold: float, exclusion_writer: DiskWriter | None = None) -> None:
        super().__init__(exclusion_writer)
        self.languages = set(languages)
        self.threshold = threshold
        self._model: Any = None

    def identify(self, text: str) -> tuple[str, float]:
        if self._model is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            self._model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        # The first 5,000 characters decide: enough for the model, and long books stay cheap.
        lang, score = self._model.classify(text[:5000])
        return str(lang), float(score)

    def verdict(self, doc: Document) -> tuple[str, str] | None:
        lang, score = self.identify(doc.text)
        doc.metadata["language"], doc.metadata["language_score"] = lang, round(score, 4)
        if not self.languages:
            return None
        if lang not in self.languages:
            return "wrong_language", f"language '{lang}' (score {score:.2f}) not in data.languages"
        if score < self.threshold:
            return "low_language_score", f"'{lang}' scored {score:.2f} < data.language_threshold={self.threshold}"
        return None


class QualityFilter(RuleFilter):
    """One of the quality rules in quality.py, with its thresholds."""

    def __init__(self, rule: str, params: dict[str, Any], exclusion_writer: DiskWriter | None = None) -> None:
        super().__init__(exclusion_writer)
        self.rule = rule
        self.name = f"lmforge {rule}"
        self.params = params

    def verdict(self, doc: Document) -> tuple[str, str] | None:
        out = quality.RULES[self.rule](doc.text, self.params)
        if isinstance(out, tuple):  # C4 also removes lines
            out, text = out
            if out is None:
                doc.text = text
        if out is None:
            return None
        return out, f"{self.rule}: {out.replace('_', ' ')} ({json.dumps(self.params, default=str)[:300]})"
