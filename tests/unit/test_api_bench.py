"""`router-distill bench --api`: the load generator, the percentiles, the promotion and metrics
figures, the Bedrock phase on the fake, and the refusal without a champion. No timing asserts."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from intent_router.storage import DirectoryStore
from router_distill.api_bench import (
    NEW,
    OLD,
    LoadResult,
    bench_bedrock,
    bench_queries,
    fallbacks_metric,
    generate_load,
    http_request,
    latency_summary,
    percentile,
    promotion_figures,
    read_response,
)
from router_distill.cli import main
from tests.support.champions import promote_bedrock, record


# -- percentiles -------------------------------------------------------------------------------
def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 0) == 1.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0
    assert percentile([7.0], 99) == 7.0
    values = [random.Random(3).expovariate(1.0) for _ in range(1001)]
    for q in (50, 95, 99, 99.9):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_refuses_no_values_and_a_rank_outside_0_100() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds() -> None:
    summary = latency_summary([0.001, 0.002, 0.003])
    assert summary == {"p50_ms": 2.0, "p95_ms": 2.9, "p99_ms": 2.98, "max_ms": 3.0}
    assert latency_summary([])["p99_ms"] is None


# -- the load generator ------------------------------------------------------------------------
async def tiny_server(counts: Counter[str]) -> asyncio.Server:
    """HTTP/1.1 keep-alive: body ok -> 200, bad -> 422, drop -> the connection is closed."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                found = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
                assert found is not None
                body = await reader.readexactly(int(found[1]))
                if body == b"drop":
                    counts["dropped"] += 1
                    return
                status, reply = (200, b'{"ok":true}') if body == b"ok" else (422, b'{"e":"bad"}')
                counts[str(status)] += 1
                writer.write(
                    b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s" % (status, len(reply), reply)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_the_load_generator_counts_200s_errors_and_dropped_connections() -> None:
    counts: Counter[str] = Counter()
    seen: list[int] = []

    async def scenario() -> LoadResult:
        server = await tiny_server(counts)
        port = server.sockets[0].getsockname()[1]
        requests = [
            http_request("127.0.0.1", port, "/v1/route", body)
            for body in (b"ok", b"ok", b"ok", b"bad", b"ok", b"drop")
        ]
        async with server:
            return await generate_load(
                "127.0.0.1",
                port,
                requests,
                connections=4,
                seconds=1.0,
                inspect=lambda received, latency, status, body: seen.append(status),
            )

    result = asyncio.run(scenario())
    assert counts["200"] > 0 and counts["422"] > 0 and counts["dropped"] > 0
    assert result.ok == counts["200"]  # every response the server wrote was read and counted
    assert result.statuses == Counter({200: counts["200"], 422: counts["422"]})
    assert result.socket_errors == counts["dropped"]  # and the connection was re-opened
    assert result.errors == counts["422"] + counts["dropped"]
    assert len(result.latencies_s) == result.ok and min(result.latencies_s) > 0
    assert len(result.error_times) == result.errors
    assert sorted(seen) == sorted([200] * counts["200"] + [422] * counts["422"])
    figures = result.figures()
    assert figures["requests"] == counts["200"] + counts["422"] + counts["dropped"]
    assert figures["req_per_s"] > 0 and figures["p50_ms"] is not None
    assert any(s.startswith("HTTP 422") for s in figures["error_samples"])
    assert len(figures["error_samples"]) <= 5


def test_a_refused_connection_is_a_socket_error() -> None:
    async def scenario() -> LoadResult:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        request = http_request("127.0.0.1", port, "/v1/route", b"ok")
        return await generate_load("127.0.0.1", port, [request], connections=1, seconds=0.2)

    result = asyncio.run(scenario())
    assert result.ok == 0 and result.socket_errors >= 1 and result.errors == result.socket_errors


def test_read_response_reads_chunked_bodies_and_connection_close() -> None:
    async def scenario() -> list[tuple[int, bytes, bool]]:
        reader = asyncio.StreamReader()
        reader.feed_data(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
            b"HTTP/1.0 200 OK\r\n\r\nto the end"
        )
        reader.feed_eof()
        return [await read_response(reader) for _ in range(3)]

    assert asyncio.run(scenario()) == [
        (200, b"abcde", True),
        (503, b"no", False),
        (200, b"to the end", False),
    ]


# -- figures -----------------------------------------------------------------------------------
def test_promotion_figures_time_the_swap_against_the_reload_interval() -> None:
    events = [(t / 10, 0.001, OLD) for t in range(100, 108)]  # promoted at 10.0
    events += [(10.75, 0.004, OLD), (10.8, 0.002, NEW), (10.9, 0.002, NEW)]
    figures = promotion_figures(events, [3.0, 10.5], promoted_at=10.0, reload_interval_s=1.0)
    assert figures["new_model_after_s"] == 0.8
    assert figures["last_old_answer_after_s"] == 0.75
    assert figures["new_model_within_reload_interval"] is True
    assert figures["failed_requests_around_promotion"] == 1  # 3.0 is outside the window
    assert figures["old_answers_after_first_new"] == 0
    assert (figures["answers_old_model"], figures["answers_new_model"]) == (9, 2)
    late = promotion_figures(events, [], promoted_at=9.5, reload_interval_s=1.0)
    assert late["new_model_within_reload_interval"] is False  # 1.3 s
    never = promotion_figures(events[:3], [], promoted_at=10.0, reload_interval_s=1.0)
    assert never["new_model_after_s"] is None and not never["new_model_within_reload_interval"]


def test_fallbacks_metric_reads_one_reason_from_prometheus_text() -> None:
    text = (
        "# HELP router_fallbacks_total Answers from the fallback, by reason\n"
        'router_fallbacks_total{router="default",reason="throttled"} 20.0\n'
        'router_fallbacks_total{router="default",reason="timeout"} 2.0\n'
        'router_fallbacks_total{router="other",reason="throttled"} 1.0\n'
    )
    assert fallbacks_metric(text, "throttled", "default") == 20.0
    assert fallbacks_metric(text, "throttled") == 21.0
    assert fallbacks_metric(text, "unparsed", "default") == 0.0


def test_the_bench_queries_are_distinct_real_searches() -> None:
    queries = bench_queries()
    assert len(queries) > 1000 and len(set(queries)) == len(queries)
    assert bench_queries() == queries  # shuffled the same way every time


def test_the_bedrock_phase_counts_every_throttled_call_that_fell_back() -> None:
    figures = bench_bedrock(
        record("local-model/any", "local-deployment/any"),
        ["sound of rain", "drone shot of a beach", "Breaking Bad season 2"],
        connections=4,
        seconds=1.0,
        sleep_ms=20,
        throttles_per_s=3,
        reload_interval_s=1.0,
        warmup_s=0.2,
    )
    assert "error" not in figures
    assert figures["errors"] == 0 and figures["ok"] > 0
    assert figures["throttles_injected"] >= 3
    assert figures["throttled_fallback_answers"] == figures["throttles_reached_converse"] > 0
    assert figures["throttled_fallbacks_metric"] == figures["throttled_fallback_answers"]
    assert figures["converse_calls"] == figures["ok"]


# -- the command -------------------------------------------------------------------------------
def test_bench_api_refuses_in_one_line_without_a_champion(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--api", "--api-seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "no" in err and "champion" in err and "router-distill run" in err


def test_bench_api_refuses_a_bedrock_champion_in_one_line(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    promote_bedrock(
        DirectoryStore(router_home / "store"),
        "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdef123456",
    )
    assert main(["bench", "--api"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Bedrock" in err


def test_bench_api_and_labelling_only_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--api", "--labelling-only"]) == 2
    assert capsys.readouterr().err.startswith("error: choose one of --api and --labelling-only")
