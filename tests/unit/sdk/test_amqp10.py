"""The hand-written AMQP 1.0 records of the results stream (``workers.amqp10``)."""

from __future__ import annotations

import pytest
from rstream import amqp_decoder

from itl_controlplane_sdk.workers import amqp10

# What RabbitMQ 3.10 stores for an AMQP 0.9.1 publish to a stream (message_id "job-091",
# type "processing", content_type application/json, persistent), as a stream-protocol reader
# receives it: message annotations, properties, application properties, data.
FROM_AMQP_091 = (
    b"\x00Sr\xc1Y\x08\xa3\rx-routing-key\xa1\x0cinterop.test\xa3\nx-exchange\xa1\x00"
    b"\xa3\x10x-basic-priorityP\x00\xa3\x15x-basic-delivery-modeP\x02"
    b"\x00Ss\xc0'\r\xa1\x07job-091@@@@@\xa3\x10application/json@@@@@@"
    b"\x00St\xc1\x1b\x02\xa1\x0cx-basic-type\xa1\nprocessing"
    b'\x00Su\xa0\x07{"a":1}'
)


def test_a_record_round_trips_with_its_id_type_and_body() -> None:
    body = b'{"job_id": "job-1", "status": "completed"}'

    assert amqp10.decode(amqp10.encode(body, "job-1")) == ("job-1", None, body)
    assert amqp10.decode(amqp10.encode(body, "job-1", "processing")) == (
        "job-1",
        "processing",
        body,
    )


def test_large_bodies_and_long_ids_use_the_32_bit_forms() -> None:
    body = b"x" * 70_000
    job_id = "j" * 300

    assert amqp10.decode(amqp10.encode(body, job_id)) == (job_id, None, body)


def test_the_stream_clients_own_codec_reads_our_records_as_amqp_091_readers_see_them() -> None:
    decoded = amqp_decoder(amqp10.encode(b"{}", "job-1", "processing"))

    assert decoded.properties.message_id == b"job-1"
    assert decoded.properties.content_type == b"application/json"
    assert decoded.application_properties == {b"x-basic-type": b"processing"}
    assert decoded.body == b"{}"


def test_a_message_rabbitmq_converted_from_amqp_091_is_read() -> None:
    assert amqp10.decode(FROM_AMQP_091) == ("job-091", "processing", b'{"a":1}')


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"not": "amqp"}', "must be a described value"),
        (FROM_AMQP_091[:-3], "runs past the end"),
        (b"\x00\x53\x75\x1f", "not an AMQP 1.0 type constructor"),
        (b"\x00\x53\x75\xb0\x00", "truncated or malformed"),
    ],
)
def test_anything_else_is_refused_with_the_reason(data: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        amqp10.decode(data)
