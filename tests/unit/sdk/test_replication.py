"""Replicated mode's names and arguments: bands, quorum queues, stream replicas, summed depth."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from itl_controlplane_sdk.api.settings import ApiSettings
from itl_controlplane_sdk.contract import replication
from itl_controlplane_sdk.contract.settings import WorkerSettings


@pytest.mark.parametrize(
    ("priority", "band"),
    [
        (0, "low"),
        (3, "low"),
        (4, "normal"),
        (5, "normal"),
        (6, "normal"),
        (7, "high"),
        (10, "high"),
    ],
)
def test_every_priority_has_one_band(priority: int, band: str) -> None:
    assert replication.band_of(priority, "replicated").name == band
    assert replication.band_of(priority, "classic").queue("q") == "q"


def test_bands_keep_the_routing_keys_on_exchanges_of_their_own() -> None:
    assert replication.band_queues("provider.jobs", "replicated") == [
        "provider.jobs.high",
        "provider.jobs",
        "provider.jobs.low",
    ]
    assert replication.band_queues("provider.jobs", "classic") == ["provider.jobs"]
    assert [b.exchange for b in replication.BANDS] == [
        "provider.exchange.high",
        "provider.exchange",
        "provider.exchange.low",
    ]


def test_replicated_queues_are_quorum_queues_that_dead_letter_at_least_once() -> None:
    arguments = replication.job_queue_arguments("replicated")
    assert arguments["x-queue-type"] == "quorum"
    assert "x-max-priority" not in arguments
    assert arguments["x-delivery-limit"] == replication.DELIVERY_LIMIT
    assert arguments["x-dead-letter-strategy"] == "at-least-once"
    assert arguments["x-overflow"] == "reject-publish"
    assert replication.job_queue_arguments("classic")["x-max-priority"] == 10
    retry = replication.retry_queue_arguments("q.high", 200, "replicated")
    assert retry["x-dead-letter-routing-key"] == "q.high"
    assert retry["x-queue-type"] == "quorum"
    assert replication.stream_arguments("replicated") == {"x-initial-cluster-size": 3}
    assert replication.stream_arguments("classic") == {}


def test_depth_is_summed_over_bands_and_a_missing_band_is_never_a_smaller_depth() -> None:
    def entry(count: int) -> dict[str, object]:
        return {"exists": True, "message_count": count, "consumer_count": 2}

    stats = {"q.high": entry(1), "q": entry(20), "q.low": entry(300)}
    summed = replication.summed_stats(stats, "q", "replicated")
    assert summed["message_count"] == 321
    assert summed["bands"] == {"q.high": 1, "q": 20, "q.low": 300}
    del stats["q.low"]
    missing = replication.summed_stats(stats, "q", "replicated")
    assert missing["exists"] is False
    assert missing["message_count"] is None
    assert "q.low" in missing["error"]


@pytest.mark.parametrize(
    ("settings", "required"),
    [(WorkerSettings, {}), (ApiSettings, {"AUTH_MODE": "none"})],
)
def test_workers_and_api_servers_read_the_queue_type_alike(
    settings: type[WorkerSettings | ApiSettings], required: dict[str, str]
) -> None:
    assert settings(**required).queue_type == "classic"
    assert settings(QUEUE_TYPE="replicated", **required).queue_type == "replicated"
    with pytest.raises(ValidationError, match="'classic' or 'replicated'"):
        settings(QUEUE_TYPE="quorum", **required)
