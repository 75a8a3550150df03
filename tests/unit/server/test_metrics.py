"""``/metrics``: every figure is read from the components' snapshot when Prometheus scrapes, in
the text format Prometheus parses, counters with their ``_total`` name."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tickhub.server.metrics import CONTENT_TYPE, LATENCY_BUCKETS, Metrics


def snapshot(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "connections": {"/ws/stream": 3, "/ws/alerts": 1},
        "subscriptions": {"/ws/stream": 7},
        "topics": 5,
        "messages_in": 11,
        "messages_out": 120,
        "published": 40,
        "conflated": 2,
        "dropped": 1,
        "ticks": 900,
        "tick_errors": 0,
        "reconnects": 4,
        "errors": {"unknown_symbol": 2, "invalid_json": 1},
        "closes": {1000: 5, 4001: 1},
        "http_responses": {200: 9, 400: 2},
        "sockets": 6,
        "sockets_aborted": 1,
        "sockets_refused": 0,
        "held_bytes": 2048,
        "feed_name": "sim",
        "feed_state": "live",
        "last_tick_age": 0.25,
    }
    base.update(overrides)
    return base


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_content_type_is_the_prometheus_text_format() -> None:
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_gauges_and_counters_carry_the_snapshot_values() -> None:
    values = scrape(Metrics(lambda: snapshot()))
    assert values[("tickhub_connections", (("endpoint", "/ws/stream"),))] == 3
    assert values[("tickhub_connections", (("endpoint", "/ws/alerts"),))] == 1
    assert values[("tickhub_subscriptions", (("endpoint", "/ws/stream"),))] == 7
    assert values[("tickhub_topics", ())] == 5
    assert values[("tickhub_messages_received_total", ())] == 11
    assert values[("tickhub_messages_sent_total", ())] == 120
    assert values[("tickhub_messages_published_total", ())] == 40
    assert values[("tickhub_messages_conflated_total", ())] == 2
    assert values[("tickhub_messages_dropped_total", ())] == 1
    assert values[("tickhub_ticks_total", ())] == 900
    assert values[("tickhub_tick_errors_total", ())] == 0
    assert values[("tickhub_feed_reconnects_total", ())] == 4
    assert values[("tickhub_errors_total", (("code", "unknown_symbol"),))] == 2
    assert values[("tickhub_closes_total", (("code", "4001"),))] == 1
    assert values[("tickhub_http_responses_total", (("status", "400"),))] == 2
    assert values[("tickhub_sockets", ())] == 6
    assert values[("tickhub_sockets_aborted_total", ())] == 1
    assert values[("tickhub_sockets_refused_total", ())] == 0
    assert values[("tickhub_held_bytes", ())] == 2048
    assert values[("tickhub_feed_state", (("feed", "sim"), ("state", "live")))] == 1
    assert values[("tickhub_feed_last_tick_age_seconds", ())] == 0.25


def test_last_tick_age_is_minus_one_before_the_first_tick() -> None:
    values = scrape(Metrics(lambda: snapshot(last_tick_age=None)))
    assert values[("tickhub_feed_last_tick_age_seconds", ())] == -1


def test_the_snapshot_is_read_at_every_scrape_not_at_construction() -> None:
    state = snapshot()
    calls = 0

    def read() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return state

    metrics = Metrics(read)
    assert calls == 0
    assert scrape(metrics)[("tickhub_ticks_total", ())] == 900
    state["ticks"] = 901
    state["feed_state"] = "stale"
    values = scrape(metrics)
    assert values[("tickhub_ticks_total", ())] == 901
    assert values[("tickhub_feed_state", (("feed", "sim"), ("state", "stale")))] == 1
    assert ("tickhub_feed_state", (("feed", "sim"), ("state", "live"))) not in values
    assert calls == 2


def test_latency_histogram_counts_each_observation_in_its_bucket() -> None:
    metrics = Metrics(lambda: snapshot())
    for seconds in (0.0004, 0.003, 0.003, 0.2, 7.0):
        metrics.latency.observe(seconds)
    values = scrape(metrics)

    def bucket(le: str) -> float:
        return values[("tickhub_publish_to_send_seconds_bucket", (("le", le),))]

    assert bucket("0.0005") == 1
    assert bucket("0.0025") == 1
    assert bucket("0.005") == 3  # cumulative
    assert bucket("0.25") == 4
    assert bucket("2.5") == 4
    assert bucket("+Inf") == 5
    assert values[("tickhub_publish_to_send_seconds_count", ())] == 5
    assert values[("tickhub_publish_to_send_seconds_sum", ())] == pytest.approx(7.2064)
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_two_instances_do_not_share_a_registry() -> None:
    a, b = Metrics(lambda: snapshot()), Metrics(lambda: snapshot())
    a.latency.observe(0.01)
    assert scrape(b)[("tickhub_publish_to_send_seconds_count", ())] == 0
