"""The HubSpot preset: contact lifecycle stages and deal stages onto leadflow events.

Two payload shapes arrive at POST /v1/hooks/hubspot: a workflow webhook (one object with
``objectId`` and ``properties``) and a webhook-API array of ``contact.propertyChange`` events.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import unquote

from leadflow.pipeline.ingest.mapping import (
    UNKNOWN_PAYLOAD,
    Mapped,
    PayloadError,
    Refused,
    channel,
    event_id,
    instant,
    optional,
    text,
    unmapped,
)
from leadflow.pipeline.ingest.presets import HubSpotPreset

SIGNATURE = "X-HubSpot-Signature-v3"
TIMESTAMP = "X-HubSpot-Request-Timestamp"


def signature_of(secret: bytes, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot v3: base64(HMAC-SHA256(client secret, method + uri + body + timestamp))."""
    message = method.encode() + uri.encode("utf-8") + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def check_signature(
    preset: HubSpotPreset, method: str, uri: str, body: bytes, headers: Any
) -> str | None:
    """None when the v3 signature holds and its timestamp is within the window; else why not."""
    given = headers.get(SIGNATURE)
    stamp = headers.get(TIMESTAMP)
    if not given or not stamp or not stamp.strip().isdigit():
        return f"the {SIGNATURE} and {TIMESTAMP} headers are required"
    if abs(time.time() * 1000 - int(stamp)) > preset.max_age_seconds * 1000:
        return f"{TIMESTAMP} is more than {preset.max_age_seconds:g} s away from now"
    expected = signature_of(preset.secret(), method, unquote(uri), body, stamp.strip())
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        return f"{SIGNATURE} does not match the request"
    return None


def _flat(properties: dict[str, Any]) -> dict[str, Any]:
    """Workflow properties are plain values or {"value": ...} objects."""
    return {k: v.get("value") if isinstance(v, dict) else v for k, v in properties.items()}


def map_hubspot(item: Any, preset: HubSpotPreset) -> Mapped:
    """One webhook item as a leadflow event, a refusal naming the field, or None (ignored)."""
    try:
        if not isinstance(item, dict):
            raise PayloadError("the item is not a JSON object")
        if "subscriptionType" in item:
            return _subscription_event(item, preset)
        properties = item.get("properties")
        if not isinstance(properties, dict):
            raise PayloadError("properties is missing (neither a workflow webhook nor an event)")
        props = _flat(properties)
        if "dealstage" in props:
            return _deal(item, props, preset)
        if "lifecyclestage" in props:
            return _contact(item, props, preset)
        raise PayloadError("properties has neither lifecyclestage nor dealstage")
    except PayloadError as exc:
        return Refused(UNKNOWN_PAYLOAD, str(exc))


def _subscription_event(item: dict[str, Any], preset: HubSpotPreset) -> Mapped:
    kind = item.get("subscriptionType")
    generic_contact = kind == "object.propertyChange" and item.get("objectTypeId") == "0-1"
    if kind != "contact.propertyChange" and not generic_contact:
        raise PayloadError(f"subscriptionType {kind!r} is not a contact.propertyChange")
    if item.get("propertyName") != "lifecyclestage":
        raise PayloadError(f"propertyName {item.get('propertyName')!r} is not lifecyclestage")
    return _contact(item, {"lifecyclestage": item.get("propertyValue")}, preset)


def _contact(item: dict[str, Any], props: dict[str, Any], preset: HubSpotPreset) -> Mapped:
    stage = text(props, "lifecyclestage", "properties.")
    if stage not in preset.lifecycle_stages:
        return unmapped("properties.lifecyclestage", stage, "lifecycle_stages")
    target = preset.lifecycle_stages[stage]
    if target is None:
        return None
    lead_id = _object_id(item, props)
    when = props.get(f"hs_lifecyclestage_{stage}_date") or props.get("lastmodifieddate")
    occurred = instant(when or item.get("occurredAt"), f"properties.hs_lifecyclestage_{stage}_date")
    event: dict[str, Any] = {
        "event_id": event_id("hubspot", "contact", lead_id, "lifecyclestage", stage, occurred),
        "event_type": target,
        "lead_id": lead_id,
        "occurred_at": occurred,
        "source_system": "hubspot",
    }
    owner = optional(props, "hubspot_owner_id")
    if target == "lead.created":
        event["source"] = channel(optional(props, "hs_analytics_source"), preset.default_source)
        event.update(email=optional(props, "email"), company=optional(props, "company"))
    elif target == "lead.mql":
        score = optional(props, "hubspotscore")
        event["score"] = int(score) if score and score.lstrip("-").isdigit() else None
    elif owner is not None:
        event["owner_id"] = owner
    return event


def _object_id(item: dict[str, Any], props: dict[str, Any]) -> str:
    for source, name in ((item, "objectId"), (item, "vid"), (props, "hs_object_id")):
        value = optional(source, name)
        if value is not None:
            return value
    raise PayloadError("objectId is missing")


def _deal(item: dict[str, Any], props: dict[str, Any], preset: HubSpotPreset) -> Mapped:
    stage = text(props, "dealstage", "properties.")
    if stage not in preset.deal_stages:
        return unmapped("properties.dealstage", stage, "deal_stages")
    target = preset.deal_stages[stage]
    if target is None:
        return None
    deal_id = _object_id(item, props)
    lead_id = text(props, "contact_id", "properties.")
    when = props.get(f"hs_date_entered_{stage}") or props.get("hs_lastmodifieddate")
    occurred = instant(when or item.get("occurredAt"), f"properties.hs_date_entered_{stage}")
    event: dict[str, Any] = {
        "event_id": event_id("hubspot", "deal", deal_id, "dealstage", stage, occurred),
        "event_type": target,
        "lead_id": lead_id,
        "occurred_at": occurred,
        "source_system": "hubspot",
        "opportunity_id": deal_id,
    }
    if target == "deal.lost":
        event["reason"] = optional(props, "closed_lost_reason")
    else:
        event["amount"] = props.get("amount")
        event["currency"] = optional(props, "deal_currency_code") or preset.default_currency
    return event
