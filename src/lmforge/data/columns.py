"""Phase 2's state for every document as compact columns, so it grows by bytes a document, not
by Python objects (a dict of five fields costs ~450 bytes, its id and ints as much again).

- `KeyIndex`: 128-bit keys (an id's hash, a text digest) -> an int, in sorted numpy arrays plus
  a small dict of recent keys; 24 bytes a key.
- `StringStore`: strings (document ids) appended to a temporary file and read back by index;
  8 bytes a string in memory.
- `Rows`: what phase 2 decides on for each spooled document (offset in the spool, sizes,
  source, label), one array per field.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import xxhash

from lmforge.data.minhash import ArrayStore
from lmforge.data.splits import stratum_of

BUFFER = 1 << 16  # keys a KeyIndex holds in its dict before merging them into its sorted arrays

def key128(text: str) -> int:
    """A 128-bit hash of a string (xxh3): two different ids collide with probability ~n^2/2^129."""
    return xxhash.xxh3_128_intdigest(text.encode("utf-8"))


class KeyIndex:
    """A map from 128-bit int keys to int values, for millions of keys.

    New keys go to a dict; every `buffer` keys the dict is merged into sorted (hi, lo, value)
    arrays. A lookup checks the dict, then binary-searches the arrays."""

    def __init__(self, buffer: int | None = None) -> None:
        self.buffer = buffer or BUFFER
        self._recent: dict[int, int] = {}
        self._hi = np.zeros(0, dtype=np.uint64)
        self._lo = np.zeros(0, dtype=np.uint64)
        self._values = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._recent) + len(self._values)

    def get(self, key: int) -> int | None:
        value = self._recent.get(key)
        if value is not None or not len(self._hi):
            return value
        hi, lo = key >> 64, key & 0xFFFFFFFFFFFFFFFF
        at, end = int(self._hi.searchsorted(np.uint64(hi))), len(self._hi)
        while at < end and int(self._hi[at]) == hi:  # almost always one candidate at most
            if int(self._lo[at]) == lo:
                return int(self._values[at])
            at += 1
        return None

    def __setitem__(self, key: int, value: int) -> None:
        """Add a key that is not in the index yet (a key that is gets a second, unreachable entry)."""
        self._recent[key] = value
        if len(self._recent) >= self.buffer:
            self._merge()

    def _merge(self) -> None:
        keys = list(self._recent)
        hi = np.fromiter((k >> 64 for k in keys), dtype=np.uint64, count=len(keys))
        lo = np.fromiter((k & 0xFFFFFFFFFFFFFFFF for k in keys), dtype=np.uint64, count=len(keys))
        values = np.fromiter(self._recent.values(), dtype=np.int64, count=len(keys))
        hi, lo = np.concatenate([self._hi, hi]), np.concatenate([self._lo, lo])
        order = np.lexsort((lo, hi))
        self._hi, self._lo = hi[order], lo[order]
        self._values = np.concatenate([self._values, values])[order]
        self._recent = {}


class StringStore:
    """Strings appended to a temporary file (in `folder`) and read back by index."""

    def __init__(self, folder: str | None = None) -> None:
        self._store = ArrayStore(np.uint8, folder)

    def append(self, text: str) -> int:
        """Store one string; returns its index."""
        self._store.append(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))
        return len(self._store) - 1

    def __len__(self) -> int:
        return len(self._store)

    def __getitem__(self, i: int) -> str:
        return self._store[i].tobytes().decode("utf-8")


class Codes:
    """Small ints for repeated values (source names, labels), in order of first appearance."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._code: dict[str, int] = {}

    def __call__(self, value: Any, key: str) -> int:
        code = self._code.get(key)
        if code is None:
            code = self._code[key] = len(self.values)
            self.values.append(value)
        return code


class Rows:
    """Phase 2's row of every spooled document, as columns; row i is the i-th record in the spool.

    at (offset in the spool), tokens, chars, quality (keep=quality only), source and label codes
    (the label as splits.stratum_of gives it, '' for none), and its id in a StringStore on disk."""

    def __init__(self, folder: str | None = None) -> None:
        self._at, self._tokens, self._chars = array("q"), array("q"), array("q")
        self._quality = array("d")
        self._source, self._label = array("i"), array("i")
        self.sources, self.labels = Codes(), Codes()
        self.ids = StringStore(folder)

    def add(self, rec: dict[str, Any], at: int, quality: float | None) -> None:
        self._at.append(at)
        self._tokens.append(rec["tokens"])
        self._chars.append(len(rec["text"]))
        if quality is not None:
            self._quality.append(quality)
        self._source.append(self.sources(rec["source"], str(rec["source"])))
        label = stratum_of(rec, "label")  # labels count by their string form, as stratification does
        self._label.append(self.labels(label, label))
        self.ids.append(rec["id"])

    def __len__(self) -> int:
        return len(self._at)

    def column(self, name: str) -> np.ndarray:
        """A column as a numpy array (a view of the growing buffer: do not add rows after)."""
        buf = getattr(self, f"_{name}")
        dtype = {"q": np.int64, "d": np.float64, "i": np.int32}[buf.typecode]
        return np.frombuffer(buf, dtype=dtype) if len(buf) else np.zeros(0, dtype=dtype)
