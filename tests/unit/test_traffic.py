"""Traffic from local files: reading, cleaning, slices, watermarks, samples and the label cache."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intent_router import traffic
from intent_router.backends.base import TeacherFingerprint
from intent_router.errors import CorruptStateError, UserInputError
from intent_router.storage import DirectoryStore
from intent_router.traffic import (
    DROP_REASONS,
    LabelCache,
    TrafficQuery,
    TrafficSourceError,
    Watermark,
    advance_watermark,
    clean_traffic,
    new_since,
    newest_slice,
    normalise_query,
    parse_traffic_source,
    read_local_traffic,
    read_watermark,
    sample_traffic,
    write_watermark,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FINGERPRINT = TeacherFingerprint(
    backend="local", teacher_model_id="t", prompt_sha256="0" * 16, label_settings="x"
)


def q(text: str, at: datetime | None = None, line: int = 1) -> TrafficQuery:
    return TrafficQuery(query=text, timestamp=at, source="test", line=line)


# -- parse_traffic_source ----------------------------------------------------------------------
def test_parse_traffic_source_kinds(tmp_path: Path) -> None:
    assert parse_traffic_source(" None ").kind == "none"
    s3 = parse_traffic_source("s3://my-bucket/traffic/2026")
    assert (s3.kind, s3.location) == ("s3", "s3://my-bucket/traffic/2026")
    logs = parse_traffic_source(
        "bedrock-logs:s3://logs-bucket/AWSLogs/",
        model_id="deployment/abc",
        request_metadata={"app": "search"},
    )
    assert logs.kind == "invocation-logs"
    assert (logs.location, logs.model_id, logs.request_metadata) == (
        "s3://logs-bucket/AWSLogs/",
        "deployment/abc",
        {"app": "search"},
    )
    local = parse_traffic_source(str(tmp_path))
    assert (local.kind, local.location) == ("file", str(tmp_path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://", "has no bucket"),
        ("s3:///prefix", "has no bucket"),
        ("s3://Bad_Bucket/x", "is not an S3 bucket name"),
        ("bedrock-logs:/var/logs", "needs an s3://bucket/prefix"),
        ("", "traffic source is empty"),
        ("/no/such/traffic.jsonl", "traffic source '/no/such/traffic.jsonl' does not exist"),
    ],
)
def test_parse_traffic_source_errors_are_one_line(text: str, expected: str) -> None:
    with pytest.raises(TrafficSourceError) as caught:
        parse_traffic_source(text)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, UserInputError)


def test_log_filters_on_another_kind_are_refused() -> None:
    with pytest.raises(TrafficSourceError, match="apply only to bedrock-logs"):
        parse_traffic_source("s3://bucket/p", model_id="m")


# -- read_local_traffic ------------------------------------------------------------------------
def test_reads_jsonl_with_iso_and_epoch_timestamps_skipping_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(
        b'{"query": "cats on skateboards", "timestamp": "2026-01-05T12:00:00Z"}\n'
        b'{"query": "goal highlights", "timestamp": 1767614400}\n'
        b'{"query": "naive time", "timestamp": "2026-01-05T13:00:00"}\n'
        b'{"query": "ms epoch", "timestamp": 1767614400000}\n'
        b'{"query": "no time"}\n'
        b'{"query": "caf\xe9 latin-1"}\n'
        b"not json at all\n"
        b'["a list"]\n'
        b'{"q": "wrong key"}\n'
        b'{"query": 42}\n'
        b'{"query": "bad time", "timestamp": "yesterday"}\n'
        b'{"query": "   "}\n'
        b"\n"
        b'{"query": "crlf line"}\r\n'
    )
    raw = read_local_traffic(path)
    assert [x.query for x in raw.queries] == [
        "cats on skateboards",
        "goal highlights",
        "naive time",
        "ms epoch",
        "no time",
        "crlf line",
    ]
    stamps = [x.timestamp for x in raw.queries]
    assert stamps[0] == T0
    assert stamps[1] == datetime.fromtimestamp(1767614400, UTC)
    assert stamps[2] == T0 + timedelta(hours=1)  # naive is UTC
    assert stamps[3] == stamps[1]
    assert stamps[4] is None
    assert all(s is None or s.tzinfo is UTC for s in stamps)
    assert [x.line for x in raw.queries] == [1, 2, 3, 4, 5, 14]
    assert raw.queries[0].source == str(path)
    report = raw.report
    assert (report.files, report.lines, report.non_utf8, report.unparseable, report.empty) == (
        1,
        14,
        1,
        5,
        2,
    )


def test_reads_csv_and_plain_text_and_gzip(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(
        'id,Query,timestamp\n1,"dogs, surfing",2026-01-05T12:00:00+01:00\n2,  ,\n3,news\n4\n'
    )
    (tmp_path / "b.txt").write_text("first query\n\nsecond query\n")
    with gzip.open(tmp_path / "c.jsonl.gz", "wb") as handle:
        handle.write(b'{"query": "zipped"}\n')
    (tmp_path / "notes.md").write_text("not traffic\n")
    raw = read_local_traffic(tmp_path)
    assert [(x.query, Path(x.source).name, x.line) for x in raw.queries] == [
        ("dogs, surfing", "a.csv", 2),
        ("news", "a.csv", 4),
        ("first query", "b.txt", 1),
        ("second query", "b.txt", 3),
        ("zipped", "c.jsonl.gz", 1),
    ]
    assert raw.queries[0].timestamp == T0 - timedelta(hours=1)
    assert raw.queries[1].timestamp is None  # short row: no timestamp cell
    assert raw.report.files == 3 and raw.report.ignored_files == 1
    assert raw.report.empty == 2  # the blank CSV query and the blank text line
    assert raw.report.unparseable == 1  # the row without a query cell


def test_folder_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "b" / "x.log").write_text("from b\n")
    (tmp_path / "a" / "deep" / "y.txt").write_text("from a deep\n")
    (tmp_path / "a" / "z.TXT").write_text("from a\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.txt").write_text("hidden\n")
    raw = read_local_traffic(tmp_path)
    assert [x.query for x in raw.queries] == ["from a deep", "from a", "from b"]


def test_a_named_file_of_any_suffix_is_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "export.dat"
    path.write_text('{"query": "kept verbatim"}\n')
    assert [x.query for x in read_local_traffic(path).queries] == ['{"query": "kept verbatim"}']


def test_csv_without_query_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,when\nhello,now\n")
    with pytest.raises(TrafficSourceError, match=r"t\.csv has no 'query' column \(header: text"):
        read_local_traffic(path)


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    good = gzip.compress(b'{"query": "a"}\n' * 200)
    (tmp_path / "cut.jsonl.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.txt.gz").write_bytes(b"this is not gzip")
    for name in ("cut.jsonl.gz", "junk.txt.gz"):
        with pytest.raises(TrafficSourceError) as caught:
            read_local_traffic(tmp_path / name)
        message = str(caught.value)
        assert f"{tmp_path / name} is not valid gzip" in message and "\n" not in message


def test_sources_without_usable_queries_are_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(TrafficSourceError, match=r"empty\.txt yields no usable query \(1 file, 0"):
        read_local_traffic(empty)
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b"{bad\n\xff\xfe\n\n")
    with pytest.raises(TrafficSourceError) as caught:
        read_local_traffic(junk)
    assert str(caught.value).endswith(
        "junk.jsonl yields no usable query (1 file, 3 lines: 1 non-UTF-8, 1 unparseable, 1 empty)"
    )
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "readme.md").write_text("hi")
    with pytest.raises(TrafficSourceError, match=r"folder yields no usable query \(no \.jsonl"):
        read_local_traffic(folder)
    with pytest.raises(TrafficSourceError, match="does not exist"):
        read_local_traffic(tmp_path / "missing")


# -- clean_traffic -----------------------------------------------------------------------------
def assert_counts_add_up(counts: dict[str, int]) -> None:
    assert counts["read"] == counts["kept"] + sum(counts[r] for r in DROP_REASONS)


def test_case_spacing_and_punctuation_variants_collapse_keeping_first_text_latest_time() -> None:
    raw = [
        q("Cats on  Skateboards", T0, 1),
        q("cats on skateboards!", T0 + timedelta(days=2), 2),
        q("  CATS ON SKATEBOARDS ", None, 3),
        q("goal highlights", T0, 4),
    ]
    cleaned = clean_traffic(raw)
    assert [(x.query, x.line, x.timestamp) for x in cleaned.queries] == [
        ("Cats on Skateboards", 1, T0 + timedelta(days=2)),
        ("goal highlights", 4, T0),
    ]
    assert cleaned.counts["exact_duplicates"] == 2
    assert_counts_add_up(cleaned.counts)


def test_near_duplicates_collapse_and_distinct_queries_stay() -> None:
    raw = [
        q("highlights of the champions league final 2019", T0),
        q("highlights of the champions league finals 2019", T0 + timedelta(hours=3)),
        q("cooking pasta with tomatoes"),
    ]
    cleaned = clean_traffic(raw)
    assert [x.query for x in cleaned.queries] == [
        "highlights of the champions league final 2019",
        "cooking pasta with tomatoes",
    ]
    assert cleaned.queries[0].timestamp == T0 + timedelta(hours=3)
    assert cleaned.counts["near_duplicates"] == 1
    strict = clean_traffic(raw, near_threshold=1.0)
    assert len(strict.queries) == 3


def test_pii_is_masked_but_years_resolutions_and_ranges_are_not() -> None:
    raw = [
        q("video from bob.smith+tv@example.co.uk about cars"),
        q("call +44 20 7946 0958 or (415) 555-0123 for the recording"),
        q("1998 world cup final in 4k 1080p"),
        q("2019-2020 season recap 2024-01-15"),
    ]
    cleaned = clean_traffic(raw)
    assert [x.query for x in cleaned.queries] == [
        "video from [email] about cars",
        "call [phone] or [phone] for the recording",
        "1998 world cup final in 4k 1080p",
        "2019-2020 season recap 2024-01-15",
    ]
    assert (cleaned.counts["emails_masked"], cleaned.counts["phones_masked"]) == (1, 2)
    unmasked = clean_traffic(raw, mask_pii=False)
    assert "bob.smith+tv@example.co.uk" in unmasked.queries[0].query


def test_control_characters_unicode_empty_and_over_long() -> None:
    raw = [
        q("ｆｕｌｌｗｉｄｔｈ\tcats\x1b[31m red\u200b"),
        q("   "),
        q("\x00\x07"),
        q("?!"),
        q("x" * 301),
        q("y" * 300),
    ]
    cleaned = clean_traffic(raw)
    assert [x.query for x in cleaned.queries] == ["fullwidth cats [31m red", "y" * 300]
    counts = cleaned.counts
    assert (counts["empty"], counts["too_long"], counts["control_chars"]) == (3, 1, 2)
    assert_counts_add_up(counts)


def test_exclude_drops_exact_and_near_matches_of_protected_queries() -> None:
    golden = ["Highlights of the Champions League final 2019", "cats on skateboards"]
    raw = [
        q("highlights of the champions league finals 2019"),  # near golden
        q("CATS on skateboards?"),  # exact golden (normalised)
        q("cats on skateboards"),  # exact golden again
        q("dogs surfing big waves"),
        q("dogs surfing big waves"),
    ]
    cleaned = clean_traffic(raw, exclude=golden)
    assert [x.query for x in cleaned.queries] == ["dogs surfing big waves"]
    counts = cleaned.counts
    assert (counts["excluded"], counts["exact_duplicates"], counts["kept"]) == (3, 1, 1)
    assert_counts_add_up(counts)


def test_counts_add_up_on_a_mixed_batch() -> None:
    raw = [q(t) for t in ["a b c", "A B C", "", "z" * 400, "news tonight", "news tonight!", "x"]]
    counts = clean_traffic(raw, exclude=["x"]).counts
    assert counts["read"] == 7 and counts["kept"] == 2
    assert_counts_add_up(counts)
    assert clean_traffic([]).counts["kept"] == 0


def test_normalise_query_is_the_cache_key() -> None:
    assert normalise_query("Don’t  STOP—me\tnow!") == normalise_query("dont stop me now")
    assert normalise_query("ﬁlm") == "film"
    assert normalise_query("spider-man") != normalise_query("spiderman")


# -- newest_slice, new_since, sample_traffic ---------------------------------------------------
def test_newest_slice_holds_out_the_newest_share() -> None:
    items = [
        q("d", T0 + timedelta(days=3)),
        q("none-1"),
        q("a", T0),
        q("c", T0 + timedelta(days=2)),
        q("b", T0 + timedelta(days=1)),
        q("none-2"),
    ]
    older, newest = newest_slice(items, 0.34)
    assert [x.query for x in newest] == ["d", "c"]  # input order kept
    assert [x.query for x in older] == ["none-1", "a", "b", "none-2"]
    assert newest_slice(items, 0.0) == (items, [])
    assert [x.query for x in newest_slice(items, 0.01)[1]] == ["d"]  # at least one
    undated = [q("first"), q("second"), q("third")]
    assert [x.query for x in newest_slice(undated, 0.3)[1]] == ["third"]  # source order
    assert newest_slice([q("only")], 0.5) == ([q("only")], [])
    assert len(newest_slice(items, 0.99)[0]) == 1  # never all
    with pytest.raises(UserInputError, match="below 1"):
        newest_slice(items, 1.0)


def test_new_since_and_watermark_round_trip(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    items = [q("old", T0), q("new", T0 + timedelta(seconds=1)), q("undated")]
    assert new_since(items, None) == items
    assert read_watermark(store, "video-search", "labelling") is None
    mark = advance_watermark("labelling", None, items[:1])
    assert (mark.last_timestamp, mark.seen) == (T0, 1)
    write_watermark(store, "video-search", mark)
    again = read_watermark(store, "video-search", "labelling")
    assert again == mark
    assert [x.query for x in new_since(items, again)] == ["new"]
    undated_mark = Watermark(consumer="labelling", last_timestamp=None, seen=3, updated_at="x")
    assert new_since(items, undated_mark) == items
    later = advance_watermark("labelling", again, [q("undated")])
    assert (later.last_timestamp, later.seen) == (T0, 2)


def test_corrupt_watermark_names_its_path(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    path = "routers/video-search/traffic-watermark-labelling.json"
    for data in (b"", b"{not json", b'{"consumer": "labelling", "seen": -1, "updated_at": "x"}'):
        store.write(path, data)
        with pytest.raises(CorruptStateError) as caught:
            read_watermark(store, "video-search", "labelling")
        assert str(caught.value).startswith(f"{path} is corrupt (")
        assert "\n" not in str(caught.value)
    with pytest.raises(UserInputError, match="invalid traffic consumer"):
        read_watermark(store, "video-search", "../x")


def test_sample_traffic_is_deterministic_and_without_replacement() -> None:
    items = [q(f"query {i}", line=i + 1) for i in range(100)]
    first = sample_traffic(items, 10, seed=7)
    assert first == sample_traffic(items, 10, seed=7)
    assert first != sample_traffic(items, 10, seed=8)
    assert len({x.line for x in first}) == 10
    assert [x.line for x in first] == sorted(x.line for x in first)
    assert sample_traffic(items, 500, seed=1) == items
    assert sample_traffic(items, 0, seed=1) == []


# -- LabelCache --------------------------------------------------------------------------------
LABEL = '{"visual": 1.0, "audio": 0.0, "transcription": 0.0, "metadata": 0.0, "reasoning": "r"}'


def test_label_cache_round_trip_by_normalised_query(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    cache = LabelCache(store, FINGERPRINT)
    assert cache.get_many(["cats"]) == {}
    cache.put_many({"Cats on Skateboards": LABEL, "dogs": LABEL.replace("r", "d")})
    again = LabelCache(store, FINGERPRINT)
    assert again.get_many(["cats on skateboards!", "dogs", "birds"]) == {
        "cats on skateboards!": LABEL,
        "dogs": LABEL.replace("r", "d"),
    }
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert all(f.startswith(f"{cache.prefix}/") for f in files)
    assert cache.prefix.startswith("traffic-labels/") and len(cache.prefix.split("/")[1]) == 16
    line = json.loads((tmp_path / cache.shard_path("dogs")).read_text().splitlines()[0])
    assert set(line) == {"key", "query", "label", "at"}


def test_label_cache_misses_for_another_teacher(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    LabelCache(store, FINGERPRINT).put_many({"cats": LABEL})
    other = FINGERPRINT.model_copy(update={"label_settings": "temperature=0.7"})
    assert LabelCache(store, other).get_many(["cats"]) == {}


def test_concurrent_writers_to_one_shard_lose_nothing(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    caches = [LabelCache(store, FINGERPRINT, shards=1) for _ in range(2)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            start.wait()
            for i in range(40):
                caches[index].put_many({f"writer {index} query {i}": LABEL})
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    wanted = [f"writer {w} query {i}" for w in range(2) for i in range(40)]
    assert len(LabelCache(store, FINGERPRINT, shards=1).get_many(wanted)) == 80


def test_corrupt_shard_line_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = DirectoryStore(tmp_path)
    cache = LabelCache(store, FINGERPRINT, shards=1)
    cache.put_many({"cats": LABEL, "dogs": LABEL})
    path = cache.shard_path("cats")
    data = store.read(path)
    assert data is not None
    store.write(path, b"{broken\n\xff\n" + data + b'{"key": 1}\n')
    assert cache.get_many(["cats", "dogs"]) == {"cats": LABEL, "dogs": LABEL}
    assert "line 1 is corrupt" in caplog.text and "line 2 is corrupt" in caplog.text
    cache.put_many({"birds": LABEL})  # rewriting drops the corrupt lines
    assert len((store.read(path) or b"").splitlines()) == 3
    assert cache.get_many(["birds", "cats"]) == {"birds": LABEL, "cats": LABEL}


def test_label_cache_stores_queries_that_are_not_encodable_utf8(tmp_path: Path) -> None:
    cache = LabelCache(DirectoryStore(tmp_path), FINGERPRINT)
    cache.put_many({"lone \ud800 surrogate": LABEL, "東京 news": LABEL})
    assert cache.get_many(["lone \ud800 surrogate", "東京 NEWS"]) == {
        "lone \ud800 surrogate": LABEL,
        "東京 NEWS": LABEL,
    }


@pytest.mark.parametrize("name", ["search.jsonl", "search.jsonl.gz"])
def test_a_huge_line_is_counted_and_skipped_without_being_held_whole(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(traffic, "MAX_LINE_BYTES", 1_000)
    huge = json.dumps({"query": "x" * 5_000})
    lines = [json.dumps({"query": "rain on a tin roof"}), huge, json.dumps({"query": "owls"})]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)

    raw = read_local_traffic(path)

    assert [q.query for q in raw.queries] == ["rain on a tin roof", "owls"]
    assert [q.line for q in raw.queries] == [1, 3]
    assert (raw.report.lines, raw.report.too_long) == (3, 1)
    assert "1 too long" in raw.report.summary()
