"""Hard inputs: bounded memory, decompression bombs, truncated archives, stray bytes, files that
vanish, columns JSON cannot hold, unwritable outputs, and PII in rejected records."""

from __future__ import annotations

import gzip
import json
import shutil
import tracemalloc
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from lmforge.config.schema import DataConfig, SourceConfig
from lmforge.data.sources import Unit, read_items, read_unit, resolve_units
from lmforge.data.stage import run_data
from lmforge.data.streams import InputProblem, Limits, byte_chunks
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, read_jsonl_gz
from lmforge.tokens.store import load_doc_starts
from tests.helpers.texts import AUSTEN, MELVILLE


def items(**source: object) -> list:
    return list(read_items(DataConfig(corpus="none", sources=[SourceConfig(**source)])))


def paragraphs(n: int) -> str:
    return "".join(f"{i}. {AUSTEN.strip()}\n\n" for i in range(n))


# ------------------------------------------------------------------ bounded memory


def test_reading_a_large_gzip_holds_a_bounded_amount(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    line = json.dumps({"text": AUSTEN * 3}) + "\n"
    with gzip.open(path, "wt", compresslevel=1) as fh:
        for i in range(12_000):
            fh.write(f'{{"id": "r{i}", ' + line[1:])
    raw = 12_000 * len(line)
    assert raw > 25e6
    cfg = DataConfig(corpus="none", paths=[str(path)])
    [unit] = resolve_units(cfg)
    tracemalloc.start()
    n = sum(1 for item in read_unit(unit) if not item.reason)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 12_000
    assert peak < 8e6, f"reading {raw / 1e6:.0f} MB held {peak / 1e6:.1f} MB at once"


def test_long_documents_are_cut_and_long_lines_skipped(tmp_path: Path) -> None:
    text = paragraphs(4000)  # ~2.8 M characters, one document with split_docs=file
    (tmp_path / "long.txt").write_text(text, encoding="utf-8")
    cfg = DataConfig(corpus="none", paths=[str(tmp_path / "long.txt")], max_doc_chars=1_000_000)
    parts = list(read_items(cfg))
    assert len(parts) >= 3 and all(len(p.text) <= 1_000_000 for p in parts)
    assert "".join(p.text for p in parts) == text  # cut at line breaks, nothing lost
    assert all("cut" in p.meta for p in parts) and parts[1].id.endswith(f":{parts[0].text.count(chr(10)) + 1}")

    rows = [{"id": "a", "text": AUSTEN}, {"id": "huge", "text": "x" * 1_500_000}, {"id": "b", "text": MELVILLE}]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = DataConfig(corpus="none", paths=[str(tmp_path / "r.jsonl")], max_doc_chars=1_000_000)
    got = list(read_items(cfg))
    assert [i.id for i in got if not i.reason] == ["a", "b"]
    [bad] = [i for i in got if i.reason]
    assert bad.id.endswith(":2") and "1,500,0" in bad.reason and "max_doc_chars" in bad.reason


# ------------------------------------------------------------------ bombs and broken archives


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_decompression_bomb_is_refused_with_a_reason(tmp_path: Path, kind: str) -> None:
    zeros = b'{"text": "' + b"a" * (8 << 20) + b'"}\n'
    data = gzip.compress(zeros) if kind == "gz" else zstandard.ZstdCompressor().compress(zeros)
    path = tmp_path / f"bomb.jsonl.{kind}"
    path.write_bytes(data)
    limits = Limits(max_expansion=50, bomb_floor=1 << 20)
    with pytest.raises(InputProblem, match="decompression bomb refused"):
        for _ in byte_chunks(path, limits):
            pass
    unit = Unit("s", str(path), "jsonl", SourceConfig(path=str(path)), limits=limits)
    [item] = read_unit(unit)
    assert "decompression bomb refused" in item.reason and "max_expansion=50" in item.reason
    # the same file is fine when its expansion is allowed
    assert b"".join(byte_chunks(path, Limits(max_expansion=1e6, bomb_floor=1 << 20))) == zeros


def test_truncated_zst_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    rows = "".join(json.dumps({"id": f"r{i}", "text": f"{i} {MELVILLE}"}) + "\n" for i in range(3000))
    data = zstandard.ZstdCompressor().compress(rows.encode())
    (tmp_path / "cut.jsonl.zst").write_bytes(data[: len(data) * 2 // 3])
    got = items(path=str(tmp_path / "cut.jsonl.zst"))
    kept = [i for i in got if not i.reason]
    assert len(kept) > 100 and [i.id for i in kept] == [f"r{i}" for i in range(len(kept))]
    assert next(i.reason for i in got if i.reason).startswith("the zst file is cut short")


# ------------------------------------------------------------------ text with a few bad bytes


def test_a_stray_nul_byte_is_cleaned_not_a_binary_file(tmp_path: Path) -> None:
    (tmp_path / "nul.txt").write_bytes(AUSTEN.encode() + b"\x00\x07" + MELVILLE.encode())
    [item] = items(path=str(tmp_path / "nul.txt"))
    assert item.reason is None and item.text == AUSTEN + MELVILLE
    assert item.meta["control_chars_removed"] == 2
    rng = np.random.default_rng(0)
    (tmp_path / "image.txt").write_bytes(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    (tmp_path / "zeros.txt").write_bytes(b"\x00" * 5000)
    for name in ("image.txt", "zeros.txt"):
        [item] = items(path=str(tmp_path / name))
        assert item.reason and item.reason.startswith("binary file (") and "control bytes" in item.reason


# ------------------------------------------------------------------ clear errors


def test_a_file_that_vanishes_after_listing_is_a_rejected_record(tmp_path: Path) -> None:
    for name in ("gone.txt", "folder.txt", "gone.jsonl"):
        (tmp_path / name).write_text(json.dumps({"text": AUSTEN}), encoding="utf-8")
    units = resolve_units(DataConfig(corpus="none", paths=[str(tmp_path)]))
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "gone.jsonl").unlink()
    (tmp_path / "folder.txt").unlink()
    (tmp_path / "folder.txt").mkdir()
    reasons = {Path(u.path).name: [i.reason for i in read_unit(u)] for u in units}
    assert reasons["gone.txt"] == reasons["gone.jsonl"]
    [why] = reasons["gone.txt"]
    assert why.startswith("cannot read the file: No such file or directory")
    assert reasons["folder.txt"][0].startswith("cannot read the file: Is a directory")


def stage(tmp_path: Path, **cfg: object) -> tuple[RunDir, dict]:
    run = RunDir(tmp_path / "run")
    opts: dict = {"corpus": "none", "min_chars": 50, "val_fraction": 0.2, "test_fraction": 0.2, "dedup": "exact",
                  **cfg}
    return run, run_data(run, DataConfig(**opts))


def test_parquet_bytes_and_decimal_columns_are_kept_as_text(tmp_path: Path) -> None:
    texts = [f"{i} {AUSTEN}" for i in range(6)]
    table = pa.table({"text": texts, "price": [Decimal("1.50")] * 6, "blob": [b"\x00\xffraw", b"utf8 ok"] * 3,
                      "raw_text": [t.encode() for t in texts]})
    pq.write_table(table, tmp_path / "t.parquet")
    run, ledger = stage(tmp_path, paths=[str(tmp_path / "t.parquet")])
    kept = [r for s in ("train", "val", "test") for r in read_jsonl_gz(run.split_file(s))]
    assert ledger["kept"] == 6 and ledger["balanced"]
    assert {r["price"] for r in kept} == {"1.50"}
    assert {r["blob"] for r in kept} == {"base64:AP9yYXc=", "utf8 ok"}


def test_bytes_in_the_text_column_are_a_rejected_record(tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": [AUSTEN.encode(), None]}), tmp_path / "b.parquet")
    got = items(path=str(tmp_path / "b.parquet"))
    assert [i.rule for i in got] == ["missing_value", "missing_value"]
    assert "of type bytes, not str" in got[0].reason


def test_unwritable_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text(AUSTEN, encoding="utf-8")
    (tmp_path / "afile").write_text("", encoding="utf-8")
    run = RunDir(tmp_path / "afile" / "run")
    with pytest.raises(LmforgeError, match="cannot write the data stage's output to"):
        run_data(run, DataConfig(corpus="none", paths=[str(tmp_path / "in.txt")]))


def test_missing_document_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match=r"val\.docs\.npy is missing") as err:
        load_doc_starts(tmp_path, "val")
    assert "lmforge tokenize" in str(err.value)
    (tmp_path / "val.docs.npy").write_bytes(b"not numpy")
    with pytest.raises(LmforgeError, match="cannot be read"):
        load_doc_starts(tmp_path, "val")


# ------------------------------------------------------------------ PII in rejected records


def test_pii_is_masked_in_records_rejected_while_reading(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"ok{i}", "text": f"{i} {AUSTEN}"}) for i in range(6)]
    lines += ['{"text": "write to jane.doe@example.com or call +1 415 555 0132", broken',
              json.dumps({"id": "nt", "note": "mail jane.doe@example.com"})]
    (tmp_path / "r.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "n.txt").write_bytes(b"contact jane.doe@example.com\n" + b"\x00\x01\x02\x03" * 3000)
    run, ledger = stage(tmp_path, paths=[str(tmp_path / "r.jsonl"), str(tmp_path / "n.txt")])
    rejected = list(read_jsonl_gz(run.rejected / "rejected.jsonl.gz"))
    assert {r["rule"] for r in rejected} >= {"read", "missing_value"}
    everything = (run.rejected / "rejected.jsonl.gz").read_bytes()
    for text in (gzip.decompress(everything).decode(), run.ledger.read_text(encoding="utf-8")):
        assert "jane.doe@example.com" not in text and "555 0132" not in text
    assert any("<EMAIL>" in r["text"] + r["reason"] for r in rejected)
    assert ledger["pii_masked"]["email"] >= 2


def test_ledger_counts_cleaned_bytes_and_cut_documents(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(paragraphs(30).encode() + b"\x00" + MELVILLE.encode())
    (tmp_path / "b.txt").write_text(paragraphs(3000), encoding="utf-8")
    shutil.copy(tmp_path / "b.txt", tmp_path / "c.txt")
    _, ledger = stage(tmp_path, paths=[str(tmp_path)], max_doc_chars=400_000, dedup="none", val_fraction=0.1,
                      test_fraction=0.1)
    assert ledger["balanced"] and ledger["control_chars_removed"] == 1
    assert ledger["documents_cut"] == ledger["in"] - 1 >= 10
