"""Several broker addresses in one RABBITMQ_URL, and keeping their passwords out of text."""

from __future__ import annotations

import pytest

from itl_controlplane_sdk.contract.brokers import split_broker_urls
from itl_controlplane_sdk.redaction import redact_url, scrub


def test_a_single_url_is_a_list_of_one() -> None:
    assert split_broker_urls("amqp://u:p@h:5672/vh") == ["amqp://u:p@h:5672/vh"]


def test_commas_separate_urls_in_order_with_spaces_allowed() -> None:
    assert split_broker_urls(" amqp://u:p@a/ , amqps://u:p@b:5671/?x=1,amqp://c/ ") == [
        "amqp://u:p@a/",
        "amqps://u:p@b:5671/?x=1",
        "amqp://c/",
    ]


def test_commas_inside_a_password_or_query_stay_in_their_url() -> None:
    value = "amqps://u:pa,ss@a:5671/?cafile=/c/a,b.pem,amqps://u:pa,ss@b:5671/"
    assert split_broker_urls(value) == [
        "amqps://u:pa,ss@a:5671/?cafile=/c/a,b.pem",
        "amqps://u:pa,ss@b:5671/",
    ]


def test_an_empty_value_names_the_problem() -> None:
    with pytest.raises(ValueError, match="RABBITMQ_URL is empty"):
        split_broker_urls("  ")


def test_every_password_of_a_list_is_redacted() -> None:
    value = "amqp://u:s3cret@a:5701/,amqp://v:t0psecret@b:5702/vh"
    assert redact_url(value) == "amqp://u:***@a:5701/,amqp://v:***@b:5702/vh"
    text = scrub("failed: amqp://v:t0psecret@b:5702/vh refused (t0psecret)", value)
    assert "s3cret" not in text and "t0psecret" not in text
    assert "amqp://v:***@b:5702/vh" in text
