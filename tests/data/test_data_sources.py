"""Reading: formats, encodings, missing values and bad input, each with file and line."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from lmforge.config.schema import DataConfig, FieldRule, SourceConfig
from lmforge.data.encoding import decode
from lmforge.data.sources import read_items, resolve_units
from lmforge.errors import LmforgeError
from tests.helpers.texts import AUSTEN, GUXIANG, MELVILLE, TAOHUAYUAN


def items(tmp_path: Path, **source: object) -> list:
    cfg = DataConfig(corpus="none", sources=[SourceConfig(**source)])
    return list(read_items(cfg))


@pytest.mark.parametrize("encoding,text", [("gb18030", TAOHUAYUAN), ("big5", "這是一個測試。" * 30 + "中文文本沒有空格，繁體字也能正確讀出。" * 10),
                                           ("utf-16", GUXIANG), ("utf-8-sig", GUXIANG), ("cp1252", "Café crème brûlée, naïve façade, voilà. " * 5)])
def test_text_encodings_are_detected(tmp_path: Path, encoding: str, text: str) -> None:
    path = tmp_path / "doc.txt"
    path.write_bytes(text.encode(encoding))
    [item] = items(tmp_path, path=str(path))
    assert item.reason is None
    assert item.text == text


def test_undecodable_bytes_replaced_or_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(AUSTEN.encode() + b"\xff\xfe\xfa" + MELVILLE.encode())
    [item] = items(tmp_path, path=str(path), encoding="utf-8")
    assert item.reason is None and item.meta["replaced_bytes"] == 3 and "\ufffd" in item.text
    [item] = items(tmp_path, path=str(path), encoding="utf-8", on_decode_error="reject")
    assert item.rule == "decode" and "not valid utf-8" in item.reason


def test_jsonl_gz_zst_with_malformed_lines(tmp_path: Path) -> None:
    lines = [json.dumps({"id": "a", "text": AUSTEN, "lang": "en"}), "{not json", json.dumps([1, 2]),
             json.dumps({"id": "b", "text": MELVILLE})]
    raw = ("\n".join(lines) + "\n").encode()
    (tmp_path / "x.jsonl.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "y.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    for name in ("x.jsonl.gz", "y.jsonl.zst"):
        got = items(tmp_path, path=str(tmp_path / name))
        assert [i.id for i in got if not i.reason] == ["a", "b"]
        bad = [i for i in got if i.reason]
        assert [i.id.rsplit(":", 1)[1] for i in bad] == ["2", "3"]  # line numbers
        assert "malformed JSON" in bad[0].reason and "must be an object" in bad[1].reason
        assert got[0].meta["lang"] == "en"


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"r{i}", "text": f"{i} {AUSTEN[i % 50:]}"}) + "\n" for i in range(400)]
    data = gzip.compress("".join(lines).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    got = items(tmp_path, path=str(tmp_path / "cut.jsonl.gz"))
    kept, bad = [i for i in got if not i.reason], [i for i in got if i.reason]
    assert len(kept) > 50 and [i.id for i in kept] == [f"r{i}" for i in range(len(kept))]
    [tail] = bad  # only the broken tail is rejected, with its reason and place
    assert "cut short" in tail.reason and f"the {len(kept)} records before it are kept" in tail.reason
    assert tail.id.endswith(f":{len(kept) + 1}")


def test_gzip_cut_inside_its_first_record_rejects_the_file(tmp_path: Path) -> None:
    data = gzip.compress((json.dumps({"text": AUSTEN}) + "\n").encode() * 50)
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    [item] = items(tmp_path, path=str(tmp_path / "cut.jsonl.gz"))
    assert "the gz file is cut short" in item.reason


def test_csv_broken_rows_and_missing_fields(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('id,text,label\n1,"' + AUSTEN.strip().replace('"', '""') + '",pos\n2,too,many,fields,here\n3,' + MELVILLE.strip().replace(",", ";")
                    + '\n4,"never closed\n', encoding="utf-8")
    got = items(tmp_path, path=str(path), label_field="label", fields={"label": FieldRule(action="fill", value="unknown")})
    by_id = {i.id: i for i in got}
    assert by_id["1"].meta["label"] == "pos"
    assert by_id["3"].meta["label"] == "unknown" and by_id["3"].meta["filled"] == {"label": "fill"}
    bad = [i for i in got if i.reason]
    assert any("row has 5 fields" in i.reason and i.id.endswith(":3") for i in bad)
    assert any("broken CSV quoting" in i.reason for i in bad)


def test_missing_value_rules(tmp_path: Path) -> None:
    recs = [{"id": 1, "text": AUSTEN, "topic": "novel"}, {"id": 2, "text": MELVILLE, "topic": "novel"},
            {"id": 3, "text": GUXIANG, "topic": None}, {"id": 4, "text": "", "topic": "x"},
            {"id": 5, "text": 42, "topic": "sea"}]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    got = {i.id: i for i in items(tmp_path, path=str(path), fields={"topic": FieldRule(action="majority")})}
    assert got["3"].meta["topic"] == "novel" and got["3"].reason is None
    assert got["4"].rule == "missing_value" and "'text' is empty" in got["4"].reason
    assert got["5"].rule == "missing_value" and "not str" in got["5"].reason
    got = {i.id: i for i in items(tmp_path, path=str(path), fields={"topic": FieldRule(action="reject")})}
    assert got["3"].rule == "missing_value" and "'topic' is missing or null" in got["3"].reason


def test_parquet_and_saved_hf_dataset(tmp_path: Path) -> None:
    table = pa.table({"text": [AUSTEN, TAOHUAYUAN], "id": ["p1", "p2"], "label": [0, 1]})
    pq.write_table(table, tmp_path / "d.parquet")
    got = items(tmp_path, path=str(tmp_path / "d.parquet"), label_field="label")
    assert [(i.id, i.meta["label"]) for i in got] == [("p1", 0), ("p2", 1)]
    # The layout `datasets.Dataset.save_to_disk` writes: arrow stream shards named in state.json.
    ds = tmp_path / "hf"
    ds.mkdir()
    with pa.OSFile(str(ds / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (ds / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (ds / "dataset_info.json").write_text("{}")
    got = items(tmp_path, path=str(ds))
    assert [i.text for i in got] == [AUSTEN, TAOHUAYUAN]


def test_bad_files_never_crash(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (folder / "fake.parquet").write_text("this is not parquet")
    (folder / "long.txt").write_text("word " * 2_000_000)  # a 10 MB single line
    outside = tmp_path / "secret.txt"
    outside.write_text(AUSTEN)
    os.symlink(outside, folder / "link.txt")
    items = list(read_items(DataConfig(corpus="none", paths=[str(folder)])))
    got = {Path(i.id).name: i for i in items}
    assert got["empty.txt"].reason == "empty file"
    assert "binary" in got["binary.txt"].reason
    assert "not a readable parquet" in got["fake.parquet"].reason
    assert "outside the input folder" in got["link.txt"].reason
    long = [i for i in items if Path(i.id).name.startswith("long.txt")]  # cut at data.max_doc_chars
    assert [len(i.text) for i in long] == [5_000_000, 5_000_000] and not any(i.reason for i in long)


def test_path_matching_nothing_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match=r"data.paths\[0\].*matches no file"):
        resolve_units(DataConfig(corpus="none", paths=[str(tmp_path / "nope*.txt")]))


def test_split_text_file_by_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "poems.txt"
    path.write_text("one\nline\n\n\ntwo\n\nthree\n", encoding="utf-8")
    got = items(tmp_path, path=str(path), split_docs="blank_lines")
    assert [i.text.strip() for i in got] == ["one\nline", "two", "three"]
    assert [i.meta["origin"].rsplit(":", 1)[1] for i in got] == ["1", "5", "7"]


def test_decode_prefers_utf8() -> None:
    assert decode("naïve 中文".encode(), "auto")[:2] == ("naïve 中文", "utf-8")


def test_jsonl_text_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    """U+2028, U+2029 and U+0085 are legal raw inside a JSON string; they must not end a record."""
    texts = [AUSTEN + "\u2028" + MELVILLE, AUSTEN + "\x85 next", MELVILLE + "\u2029"]
    lines = [json.dumps({"text": t}, ensure_ascii=False) for t in texts] + ["{bad"]
    path = tmp_path / "seps.jsonl"
    path.write_bytes("\r\n".join(lines).encode())
    got = items(tmp_path, path=str(path))
    assert [i.text for i in got if not i.reason] == texts
    [bad] = [i for i in got if i.reason]
    assert bad.id.endswith(":4")  # line numbers count "\n" only


@pytest.mark.parametrize("split_docs,pattern,text", [("blank_lines", None, "  \n\n\t\n\n"),
                                                     ("regex", r"^---$", "\n---\n \n---\n")])
def test_separator_only_file_is_counted_not_dropped(tmp_path: Path, split_docs: str, pattern: str | None,
                                                    text: str) -> None:
    """A file that splits into no document still yields one item, for the ledger to count."""
    path = tmp_path / "blank.txt"
    path.write_text(text, encoding="utf-8")
    [item] = items(tmp_path, path=str(path), split_docs=split_docs, split_pattern=pattern)
    assert item.id == str(path) and item.rule == "read" and "only whitespace and separators" in item.reason


def test_csv_reads_on_after_broken_quoting(tmp_path: Path) -> None:
    """One badly quoted row is rejected with its lines; the rows after it are still read."""
    path = tmp_path / "q.csv"
    path.write_text('id,text\n1,"' + AUSTEN.strip().replace('"', '""') + '"\n2,"broken "quote" here"\n3,"'
                    + MELVILLE.strip().replace('"', '""')
                    + '"\n4,"spans\ntwo "lines" x\n5,last row\n', encoding="utf-8")
    got = items(tmp_path, path=str(path))
    assert [i.id for i in got if not i.reason] == ["1", "3", "5"]
    bad = [i for i in got if i.reason]
    assert [i.id.rsplit(":", 1)[1] for i in bad] == ["3", "5"]
    assert "on line 3" in bad[0].reason and "broken" in bad[0].reason
    assert "on lines 5-6" in bad[1].reason


def test_record_files_use_the_source_encoding_and_decode_rule(tmp_path: Path) -> None:
    """`encoding` and `on_decode_error` apply to JSONL and CSV as to text files."""
    text = "Ã©tÃ© " + AUSTEN  # as latin-1 bytes this is also valid UTF-8 ("été"), so only the declared codec reads it right
    (tmp_path / "l.jsonl").write_bytes((json.dumps({"text": text}, ensure_ascii=False) + "\n").encode("latin-1"))
    (tmp_path / "l.csv").write_bytes(('text\n"' + text.replace('"', '""') + '"\n').encode("latin-1"))
    for name in ("l.jsonl", "l.csv"):
        [item] = items(tmp_path, path=str(tmp_path / name), encoding="latin-1")
        assert item.reason is None and item.text.strip() == text.strip()
    good = json.dumps({"text": AUSTEN}).encode()
    (tmp_path / "bad.jsonl").write_bytes(good + b"\n" + good[:-2] + b"\xff\"}\n")
    [item] = items(tmp_path, path=str(tmp_path / "bad.jsonl"), encoding="utf-8", on_decode_error="reject")
    assert item.rule == "decode" and "not valid utf-8" in item.reason and "line 2" in item.reason
    got = items(tmp_path, path=str(tmp_path / "bad.jsonl"), encoding="utf-8")
    assert [i.reason for i in got] == [None, None] and "\ufffd" in got[1].text


def test_glob_reads_matched_folders_and_empty_sources_are_named(tmp_path: Path) -> None:
    """A glob matching folders reads their files; a source with nothing to read is an error naming it."""
    for name in ("a", "b"):
        (tmp_path / "corpora" / name).mkdir(parents=True)
        (tmp_path / "corpora" / name / "t.txt").write_text(AUSTEN, encoding="utf-8")
    got = items(tmp_path, path=str(tmp_path / "corpora" / "*"))
    assert [Path(i.id).parent.name for i in got] == ["a", "b"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / ".notes.txt").write_text(AUSTEN, encoding="utf-8")
    for folder in ("empty", "hidden"):
        cfg = DataConfig(corpus="none", paths=[str(tmp_path / "corpora"), str(tmp_path / folder)])
        with pytest.raises(LmforgeError, match=rf"data.paths\[1\]: '.*{folder}' holds no file"):
            resolve_units(cfg)


def test_csv_header_naming_a_column_twice_is_rejected(tmp_path: Path) -> None:
    """dict(zip(header, row)) would keep one of the two columns and lose the other without a word."""
    path = tmp_path / "dup.tsv"
    path.write_text("text\tlabel\ttext\n" + AUSTEN.strip().replace("\n", " ") + "\tx\tother\n", encoding="utf-8")
    [item] = items(tmp_path, path=str(path))
    assert item.rule == "read" and "names 'text' more than once" in item.reason
