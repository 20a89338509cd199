"""The benchmark reads its figures from what wrk, Kafka's perf tools and redis-benchmark
print: each parser against the tool's real output format."""

from __future__ import annotations

import pytest

from benchmarks.kafka_tools import (
    ToolOutputError,
    parse_consumer_performance,
    parse_end_to_end_latency,
    parse_producer_performance,
)
from benchmarks.redis_tools import parse_redis_benchmark
from benchmarks.wrk import WrkOutputError, parse_wrk_output

WRK_OUTPUT = """\
Running 15s test @ http://127.0.0.1:5050/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    29.81ms   15.23ms 180.32ms   72.10%
    Req/Sec     1.08k   123.45     1.40k    70.00%
  Latency Distribution
     50%  812.00us
     75%   36.50ms
     90%   47.90ms
     99%    1.20s
  16154 requests in 15.01s, 4.58MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 12
Requests/sec:   1076.22
Transfer/sec:    312.45KB
"""


def test_wrk_output_gives_rate_latencies_in_ms_and_errors() -> None:
    report = parse_wrk_output(WRK_OUTPUT)
    assert report.rps == pytest.approx(1076.22)
    assert report.requests == 16154
    assert report.seconds == pytest.approx(15.01)
    assert report.latency_ms == {50: 0.812, 75: 36.5, 90: 47.9, 99: 1200.0}
    assert report.non_2xx == 12
    assert report.socket_errors == 5
    assert report.ok_rps == pytest.approx((16154 - 12) / 15.01)


def test_wrk_output_without_errors_counts_none() -> None:
    clean = "\n".join(
        line for line in WRK_OUTPUT.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    report = parse_wrk_output(clean)
    assert (report.non_2xx, report.socket_errors) == (0, 0)


def test_wrk_output_without_latency_distribution_is_refused() -> None:
    without = WRK_OUTPUT.replace("     99%    1.20s\n", "")
    with pytest.raises(WrkOutputError, match="--latency"):
        parse_wrk_output(without)


def test_producer_performance_rate_is_the_closing_lines() -> None:
    output = (
        "Reading payloads from: /tmp/payloads.txt\n"
        "Number of messages read: 1000\n"
        "152344 records sent, 30468.8 records/sec (5.93 MB/sec), 612.1 ms avg latency, "
        "1021.0 ms max latency.\n"
        "300000 records sent, 41203.130582 records/sec (8.02 MB/sec), 540.22 ms avg latency, "
        "1021.00 ms max latency, 512 ms 50th, 921 ms 95th, 1001 ms 99th, 1019 ms 99.9th.\n"
    )
    assert parse_producer_performance(output) == pytest.approx(41203.130582)


def test_consumer_performance_rate_is_the_fetch_rate() -> None:
    output = (
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, "
        "nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
        "2026-11-25 02:29:33:677, 2026-11-25 02:29:34:619, 2.0409, 2.1665, 10000, "
        "10615.7113, 673, 269, 7.5869, 37174.7212\n"
    )
    assert parse_consumer_performance(output) == pytest.approx(37174.7212)


def test_tool_output_without_its_figure_is_refused() -> None:
    with pytest.raises(ToolOutputError):
        parse_producer_performance("Exception in thread main")
    with pytest.raises(ToolOutputError):
        parse_consumer_performance("WARN no records\n")
    with pytest.raises(ToolOutputError):
        parse_redis_benchmark("Could not connect to Redis")


def test_redis_benchmark_rate_is_the_last_figure_after_progress_lines() -> None:
    output = (
        "SET: rps=412000.0 (overall: 405123.4) avg_msec=1.512 (overall: 1.530)\r"
        "SET: 561797.75 requests per second, p50=1.215 msec\n"
    )
    assert parse_redis_benchmark(output) == pytest.approx(561797.75)


def test_end_to_end_latency_gives_p50_p99_and_average() -> None:
    output = (
        "0\t187.23449\nAvg latency: 8.3430 ms\nPercentiles: 50th = 6, 99th = 28, 99.9th = 187\n"
    )
    assert parse_end_to_end_latency(output) == pytest.approx((6.0, 28.0, 8.343))
    with pytest.raises(ToolOutputError):
        parse_end_to_end_latency("0\t187.23449\n")
