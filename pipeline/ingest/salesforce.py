"""The Salesforce preset: Flow HTTP callouts carrying a Lead or an Opportunity record.

A record is serialized as the REST API does, ``attributes.type`` naming its sObject. Flow has no
vendor signature: the callout authenticates with a bearer token from LEADFLOW_INGEST_TOKENS.
"""

from __future__ import annotations

from typing import Any

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
from leadflow.pipeline.ingest.presets import SalesforcePreset


def map_salesforce(item: Any, preset: SalesforcePreset) -> Mapped:
    """One record as a leadflow event, a refusal naming the field, or None (ignored)."""
    try:
        if not isinstance(item, dict):
            raise PayloadError("the item is not a JSON object")
        attributes = item.get("attributes")
        kind = attributes.get("type") if isinstance(attributes, dict) else None
        if kind == "Lead":
            return _lead(item, preset)
        if kind == "Opportunity":
            return _opportunity(item, preset)
        raise PayloadError(f"attributes.type {kind!r} is not Lead or Opportunity")
    except PayloadError as exc:
        return Refused(UNKNOWN_PAYLOAD, str(exc))


def _base(
    kind: str, record: dict[str, Any], field: str, value: str, lead_id: str
) -> dict[str, Any]:
    occurred = instant(record.get("LastModifiedDate"), "LastModifiedDate")
    record_id = text(record, "Id", "")
    return {
        "event_id": event_id("salesforce", kind, record_id, field, value, occurred),
        "lead_id": lead_id,
        "occurred_at": occurred,
        "source_system": "salesforce",
    }


def _lead(record: dict[str, Any], preset: SalesforcePreset) -> Mapped:
    status = text(record, "Status", "")
    if status not in preset.lead_statuses:
        return unmapped("Status", status, "lead_statuses")
    target = preset.lead_statuses[status]
    if target is None:
        return None
    event = _base("Lead", record, "Status", status, text(record, "Id", ""))
    event["event_type"] = target
    if target == "lead.created":
        event["source"] = channel(optional(record, "LeadSource"), preset.default_source)
        event.update(email=optional(record, "Email"), company=optional(record, "Company"))
    elif target != "lead.mql":
        event["owner_id"] = optional(record, "OwnerId")
    if target == "lead.rejected":
        event["reason"] = channel(optional(record, "Reason__c"), "not_converted")
    return event


def _opportunity(record: dict[str, Any], preset: SalesforcePreset) -> Mapped:
    stage = text(record, "StageName", "")
    if stage not in preset.opportunity_stages:
        return unmapped("StageName", stage, "opportunity_stages")
    target = preset.opportunity_stages[stage]
    if target is None:
        return None
    lead_id = text(record, preset.opportunity_lead_field, "")
    event = _base("Opportunity", record, "StageName", stage, lead_id)
    event.update(event_type=target, opportunity_id=text(record, "Id", ""))
    event["owner_id"] = optional(record, "OwnerId")
    if target == "deal.lost":
        event["reason"] = optional(record, "Loss_Reason__c")
    else:
        event.update(amount=record.get("Amount"), currency=optional(record, "CurrencyIsoCode"))
    return event
