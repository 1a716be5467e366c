"""Envelopes: what the gateway publishes passes the platform schema; both worker generations read."""

from __future__ import annotations

import pytest

from gateway.events import (InvalidEnvelope, answers_request, completes_turn, control_event, event_type,
                            inbound_event, validate_inbound, wire_headers)


def test_inbound_event_has_exactly_the_schema_fields():
    event = inbound_event(session_id="s1", message="hi", metadata={"source": "legacy_api"})
    assert set(event) == {"event_id", "session_id", "persona_id", "role", "message", "attachments", "metadata"}
    assert event["role"] == "user" and event["attachments"] == []


@pytest.mark.parametrize("change", [
    {"unexpected": 1}, {"role": "robot"}, {"message": None}, {"attachments": [1]}, {"metadata": "x"},
    {"trace_context": {"traceparent": 5}},
])
def test_schema_rejects_what_the_platform_forbids(change):
    event = {**inbound_event(session_id="s1", message="hi"), **change}
    with pytest.raises(InvalidEnvelope):
        validate_inbound(event)


def test_control_events_are_system_events_with_a_type():
    event = control_event(session_id="s1", control="session.reset")
    assert (event["type"], event["role"], event["message"]) == ("session.reset", "system", "")
    assert event["metadata"]["source"] == "legacy_api"


def test_wire_headers_name_the_event():
    event = inbound_event(session_id="s1", message="hi")
    headers = dict(wire_headers(event, tenant="acme"))
    assert headers == {"event_id": event["event_id"].encode(), "session_id": b"s1", "event_type": b"message",
                       "tenant_id": b"acme"}


@pytest.mark.parametrize("event, name", [
    ({"metadata": {"status": "streaming"}}, "assistant.stream"),
    ({"metadata": {"status": "completed"}}, "assistant.final"),
    ({"type": "tool.start", "metadata": {"status": "completed"}}, "tool.start"),
    ({"type": "assistant.final"}, "assistant.final"),
    ({"metadata": None}, "message"),
    ({}, "message"),
])
def test_event_type_is_declared_or_derived(event, name):
    assert event_type(event) == name


def test_both_generations_complete_a_turn():
    assert completes_turn({"metadata": {"status": "completed"}})
    assert completes_turn({"type": "assistant.final", "version": "sa01-v1"})
    assert not completes_turn({"type": "assistant.stream"})
    assert not completes_turn({"metadata": {"status": "streaming"}})


@pytest.mark.parametrize("event, matches", [
    ({"metadata": {"status": "completed", "request_event_id": "r1"}}, True),
    ({"metadata": {"status": "completed", "request_event_id": "other"}}, False),
    ({"metadata": {"status": "completed"}}, True),  # a worker that does not echo the id
    ({"type": "assistant.final", "metadata": {"request_event_id": "r1"}}, True),
    ({"metadata": {"status": "streaming", "request_event_id": "r1"}}, False),
])
def test_bridge_matches_only_the_reply_to_its_request(event, matches):
    assert answers_request(event, "r1") is matches
