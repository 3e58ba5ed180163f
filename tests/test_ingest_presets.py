"""Issue 18 item 3: the HubSpot and Salesforce presets of `leadflow ingest`.

The sample payloads follow the shapes of the vendors' public documentation (HubSpot workflow
webhooks and webhook-API events, Salesforce records as the REST API serializes them), with
values of our own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from leadflow.pipeline.ingest.hubspot import check_signature, map_hubspot, signature_of
from leadflow.pipeline.ingest.mapping import Refused
from leadflow.pipeline.ingest.presets import HubSpotPreset, SalesforcePreset, load_presets
from leadflow.pipeline.ingest.salesforce import map_salesforce
from leadflow.pipeline.kafka.broker import EmbeddedBroker
from leadflow.schemas.errors import LeadflowError
from leadflow.sinks import make_engine
from tests.support.faults import wait_for
from tests.support.fixtures import WorkerFactory
from tests.support.ingest import SECRETS, IngestProcess
from tests.support.queries import table_rows

SECRET = "hs-client-secret-6b1d"
PUBLIC = "https://ingest.example.test"
HUBSPOT = HubSpotPreset(client_secret=SECRET, public_url=PUBLIC, default_currency="EUR")
SALESFORCE = SalesforcePreset()
PRESETS_YAML = f"""
hubspot:
  client_secret: {SECRET}
  public_url: {PUBLIC}
  default_currency: EUR
salesforce:
  opportunity_lead_field: Lead_Id__c
"""

# A webhook-API delivery: an array of events, one per property change.
HS_SUBSCRIPTION = [
    {
        "eventId": 4107,
        "subscriptionId": 88120,
        "portalId": 7300451,
        "appId": 90210,
        "occurredAt": 1793527200000,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": 5501,
        "propertyName": "lifecyclestage",
        "propertyValue": "lead",
        "changeSource": "CRM_UI",
    }
]


def hs_contact(stage: str, date: str, **props: str) -> dict[str, Any]:
    """A contact-based workflow webhook: the enrolled record with its properties."""
    properties = {"lifecyclestage": {"value": stage}, f"hs_lifecyclestage_{stage}_date": date}
    return {"objectId": 5501, "portalId": 7300451, "properties": {**properties, **props}}


def hs_deal(stage: str, date: str, **props: str) -> dict[str, Any]:
    """A deal-based workflow webhook whose body carries the contact's record id."""
    properties = {"dealstage": stage, f"hs_date_entered_{stage}": date, "contact_id": "5501"}
    return {"objectId": 930017, "objectType": "DEAL", "properties": {**properties, **props}}


def sf_lead(status: str, when: str, **fields: str) -> dict[str, Any]:
    return {
        "attributes": {"type": "Lead", "url": "/services/data/v61.0/sobjects/Lead/00Q8d00000XyZ1"},
        "Id": "00Q8d00000XyZ1",
        "Status": status,
        "LastModifiedDate": when,
        **fields,
    }


def sf_opportunity(stage: str, when: str, **fields: object) -> dict[str, Any]:
    return {
        "attributes": {"type": "Opportunity"},
        "Id": "0068d00000Qw7P",
        "StageName": stage,
        "LastModifiedDate": when,
        "Lead_Id__c": "00Q8d00000XyZ1",
        **fields,
    }


def mapped(item: Any, preset: HubSpotPreset = HUBSPOT) -> dict[str, Any]:
    result = map_hubspot(item, preset)
    assert isinstance(result, dict), result
    return result


def test_hubspot_subscription_event_becomes_lead_created() -> None:
    event = mapped(HS_SUBSCRIPTION[0])
    assert event == {
        "event_id": event["event_id"],
        "event_type": "lead.created",
        "lead_id": "5501",
        "occurred_at": "2026-11-01T10:00:00+00:00",
        "source_system": "hubspot",
        "source": "hubspot",
        "email": None,
        "company": None,
    }
    assert mapped(dict(HS_SUBSCRIPTION[0], attemptNumber=3))["event_id"] == event["event_id"]
    generic = dict(HS_SUBSCRIPTION[0], subscriptionType="object.propertyChange", objectTypeId="0-1")
    assert mapped(generic) == event


def test_hubspot_workflow_contact_and_deal() -> None:
    mql = mapped(hs_contact("marketingqualifiedlead", "2026-11-02T11:30:00Z", hubspotscore="81"))
    assert (mql["event_type"], mql["score"]) == ("lead.mql", 81)
    assert mql["occurred_at"] == "2026-11-02T11:30:00+00:00"
    sql = mapped(hs_contact("salesqualifiedlead", "1793538000000", hubspot_owner_id="ow-12"))
    assert (sql["event_type"], sql["owner_id"]) == ("lead.accepted", "ow-12")
    created = mapped(hs_contact("lead", "2026-11-01T08:00:00Z", hs_analytics_source="PAID_SEARCH"))
    assert created["source"] == "paid_search"
    won = mapped(hs_deal("closedwon", "2026-11-05T16:00:00Z", amount="4200.50"))
    assert won == {
        "event_id": won["event_id"],
        "event_type": "deal.won",
        "lead_id": "5501",
        "occurred_at": "2026-11-05T16:00:00+00:00",
        "source_system": "hubspot",
        "opportunity_id": "930017",
        "amount": "4200.50",
        "currency": "EUR",
    }
    usd = mapped(hs_deal("appointmentscheduled", "2026-11-03T09:00:00Z", deal_currency_code="USD"))
    assert (usd["event_type"], usd["currency"]) == ("opportunity.created", "USD")


def test_hubspot_ids_are_deterministic_and_distinct() -> None:
    first = mapped(hs_contact("marketingqualifiedlead", "2026-11-02T11:30:00Z"))
    again = mapped(hs_contact("marketingqualifiedlead", "2026-11-02T11:30:00Z"))
    later = mapped(hs_contact("marketingqualifiedlead", "2026-12-02T11:30:00Z"))
    assert first["event_id"] == again["event_id"] != later["event_id"]
    assert len(first["event_id"]) <= 128


def test_hubspot_ignored_unmapped_and_unknown() -> None:
    assert map_hubspot(hs_contact("customer", "2026-11-05T16:00:00Z"), HUBSPOT) is None
    unmapped = map_hubspot(hs_contact("evangelist", "2026-11-05T16:00:00Z"), HUBSPOT)
    assert isinstance(unmapped, Refused) and unmapped.reason == "unmapped_stage"
    assert "properties.lifecyclestage" in unmapped.error and "evangelist" in unmapped.error
    deal = map_hubspot(hs_deal("contractsent", "2026-11-05T16:00:00Z"), HUBSPOT)
    assert isinstance(deal, Refused) and "properties.dealstage" in deal.error
    for item, field in (
        ({"objectId": 1}, "properties"),
        ({"objectId": 1, "properties": {"email": "a@b.c"}}, "lifecyclestage"),
        (dict(HS_SUBSCRIPTION[0], subscriptionType="contact.creation"), "subscriptionType"),
        (dict(HS_SUBSCRIPTION[0], propertyName="email"), "propertyName"),
        (dict(HS_SUBSCRIPTION[0], subscriptionType="object.propertyChange"), "subscriptionType"),
        ({"properties": {"lifecyclestage": "lead"}}, "objectId"),
        (hs_deal("closedwon", "2026-11-05T16:00:00Z", contact_id=""), "contact_id"),
        (hs_contact("lead", "yesterday"), "hs_lifecyclestage_lead_date"),
        ("a string", "object"),
    ):
        refused = map_hubspot(item, HUBSPOT)
        assert isinstance(refused, Refused) and refused.reason == "unknown_payload", item
        assert field in refused.error, (field, refused.error)


class Headers(dict[str, str]):
    pass


def signed(body: bytes, uri: str, stamp: int | None = None) -> Headers:
    stamp = stamp if stamp is not None else int(time.time() * 1000)
    signature = signature_of(SECRET.encode(), "POST", uri, body, str(stamp))
    return Headers({"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(stamp)})


def test_hubspot_v3_signature() -> None:
    uri = PUBLIC + "/v1/hooks/hubspot?portal=7300451"
    body = json.dumps(HS_SUBSCRIPTION).encode()
    assert check_signature(HUBSPOT, "POST", uri, body, signed(body, uri)) is None
    assert check_signature(HUBSPOT, "POST", uri, body + b" ", signed(body, uri)) is not None
    assert check_signature(HUBSPOT, "POST", uri + "&x=1", body, signed(body, uri)) is not None
    old = int(time.time() * 1000) - 301_000
    problem = check_signature(HUBSPOT, "POST", uri, body, signed(body, uri, old))
    assert problem is not None and "Timestamp" in problem
    assert check_signature(HUBSPOT, "POST", uri, body, Headers()) is not None
    # Computed apart: printf %s "POSThttps://h/x{}1700000000000" |
    #   openssl dgst -sha256 -hmac secret -binary | base64
    expected = "3MeX8GKBMUx/y4eNnmX90EDrlvrMatA1+vEh8Px1KbI="
    assert signature_of(b"secret", "POST", "https://h/x", b"{}", "1700000000000") == expected


def test_salesforce_lead_and_opportunity() -> None:
    created = map_salesforce(
        sf_lead(
            "Open - Not Contacted", "2026-11-02T09:15:00.000+0000", LeadSource="Partner Referral"
        ),
        SALESFORCE,
    )
    assert isinstance(created, dict)
    assert created["event_type"] == "lead.created" and created["source"] == "partner_referral"
    assert created["occurred_at"] == "2026-11-02T09:15:00+00:00"
    assert created["lead_id"] == "00Q8d00000XyZ1"
    rejected = map_salesforce(
        sf_lead("Closed - Not Converted", "2026-11-04T09:15:00.000+0000"), SALESFORCE
    )
    assert isinstance(rejected, dict) and rejected["reason"] == "not_converted"
    won = map_salesforce(
        sf_opportunity("Closed Won", "2026-11-09T12:00:00Z", Amount=9900, CurrencyIsoCode="GBP"),
        SALESFORCE,
    )
    assert isinstance(won, dict)
    assert (won["event_type"], won["amount"], won["currency"]) == ("deal.won", 9900, "GBP")
    assert won["lead_id"] == "00Q8d00000XyZ1" and won["opportunity_id"] == "0068d00000Qw7P"
    again = map_salesforce(
        sf_opportunity("Closed Won", "2026-11-09T12:00:00Z", Amount=9900, CurrencyIsoCode="GBP"),
        SALESFORCE,
    )
    assert isinstance(again, dict) and again["event_id"] == won["event_id"]


def test_salesforce_refusals_name_the_field() -> None:
    for item, reason, field in (
        (sf_lead("Nurturing", "2026-11-02T09:15:00Z"), "unmapped_stage", "Status"),
        (
            sf_opportunity("Negotiation/Review", "2026-11-02T09:15:00Z"),
            "unmapped_stage",
            "StageName",
        ),
        ({"Id": "x"}, "unknown_payload", "attributes.type"),
        (sf_lead("Working - Contacted", ""), "unknown_payload", "LastModifiedDate"),
        (
            sf_opportunity("Closed Won", "2026-11-02T09:15:00Z", Lead_Id__c=None),
            "unknown_payload",
            "Lead_Id__c",
        ),
    ):
        refused = map_salesforce(item, SALESFORCE)
        assert isinstance(refused, Refused) and refused.reason == reason, item
        assert field in refused.error, (field, refused.error)


def test_presets_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text(PRESETS_YAML)
    presets = load_presets(str(path))
    assert presets.hubspot is not None and presets.hubspot.public_url == PUBLIC
    assert presets.salesforce is not None
    assert load_presets(None).hubspot is None
    for text in (
        "hubspot: {client_secret: s, lifecycle_stages: {lead: lead.won}}",
        "hubspot: {public_url: x}",
        "salesforce: {opportunity_stages: {Won: lead.created}}",
        "salesforce: {surprise: 1}",
        "hubspot: [",
    ):
        path.write_text(text)
        with pytest.raises(LeadflowError):
            load_presets(str(path))


# -- through a real broker, ingest and worker ---------------------------------------------------

IngestFactory = Callable[..., IngestProcess]


@pytest.fixture
def preset_ingest(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[IngestProcess]:
    path = tmp_path / "presets.yaml"
    path.write_text(PRESETS_YAML)
    process = IngestProcess(broker, tmp_path, LEADFLOW_INGEST_PRESETS=str(path))
    try:
        process.wait_healthy(60)
        yield process
    finally:
        process.stop()


def post_hubspot(ingest: IngestProcess, payload: object, stamp: int | None = None) -> Any:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        **signed(body, PUBLIC + "/v1/hooks/hubspot", stamp),
    }
    return ingest.request("POST", "/v1/hooks/hubspot", body, headers)


def post_salesforce(ingest: IngestProcess, payload: object, token: str = SECRETS["ops"]) -> Any:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return ingest.request("POST", "/v1/hooks/salesforce", json.dumps(payload).encode(), headers)


def lead_row(url: str, lead_id: str) -> dict[str, Any] | None:
    engine = make_engine(url)
    try:
        rows = {row["lead_id"]: row for row in table_rows(engine, "lead_lifecycle")}
    finally:
        engine.dispose()
    return rows.get(lead_id)


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_scenario_of_stage_changes_ends_in_the_expected_rows(
    database_url: str, start_worker: WorkerFactory, preset_ingest: IngestProcess
) -> None:
    worker = start_worker(database_url)
    ingest = preset_ingest
    steps = [
        HS_SUBSCRIPTION,
        hs_contact("marketingqualifiedlead", "2026-11-02T11:30:00Z", hubspotscore="81"),
        hs_contact("salesqualifiedlead", "2026-11-02T15:00:00Z", hubspot_owner_id="ow-12"),
        [
            hs_deal("appointmentscheduled", "2026-11-03T09:00:00Z", amount="3900"),
            hs_contact("customer", "2026-11-05T16:00:00Z"),
        ],
        hs_deal("closedwon", "2026-11-05T16:00:00Z", amount="4200.50"),
    ]
    answers = [post_hubspot(ingest, step) for step in steps]
    assert [a.status for a in answers] == [200] * 5, answers
    assert [a.body["accepted"] for a in answers] == [1, 1, 1, 1, 1]
    assert answers[3].body["ignored"] == 1
    retried = post_hubspot(ingest, steps[1])
    assert retried.status == 200 and retried.body["accepted"] == 1
    stale = post_hubspot(ingest, steps[1], stamp=int(time.time() * 1000) - 600_000)
    assert stale.status == 401
    odd = post_hubspot(ingest, hs_contact("evangelist", "2026-11-06T10:00:00Z"))
    assert odd.status == 200 and odd.body["accepted"] == 0
    assert odd.body["refused"][0]["reason"] == "unmapped_stage"

    sales = [
        sf_lead("Open - Not Contacted", "2026-11-02T09:15:00.000+0000", LeadSource="Web"),
        sf_lead("Working - Contacted", "2026-11-02T13:00:00.000+0000", OwnerId="005AA"),
        sf_lead("Closed - Converted", "2026-11-03T10:00:00.000+0000", OwnerId="005AA"),
        sf_opportunity("Prospecting", "2026-11-03T10:05:00Z", Amount=1200, CurrencyIsoCode="USD"),
        sf_opportunity("Closed Lost", "2026-11-08T10:00:00Z", Loss_Reason__c="price"),
    ]
    assert post_salesforce(ingest, sales, token="wrong").status == 401
    marketing_only = post_salesforce(ingest, sales, token=SECRETS["mkt"])
    assert [r["reason"] for r in marketing_only.body["refused"]] == ["wrong_topic"] * 4
    answer = post_salesforce(ingest, sales)
    assert answer.status == 200 and answer.body == {"accepted": 5, "refused": [], "ignored": 0}

    def settled() -> bool:
        hub, sf = lead_row(database_url, "5501"), lead_row(database_url, "00Q8d00000XyZ1")
        return bool(hub and sf and hub["event_count"] == 5 and sf["event_count"] == 5)

    wait_for("both leads folded", settled, timeout=90, every=0.5)
    assert worker.proc.poll() is None
    hub = lead_row(database_url, "5501")
    assert hub is not None
    assert (hub["stage"], hub["cycle_no"], hub["source"], hub["score"]) == ("won", 1, "hubspot", 81)
    assert (hub["owner_id"], hub["opportunity_id"]) == ("ow-12", "930017")
    assert (hub["amount"], hub["currency"]) == (Decimal("4200.50"), "EUR")
    assert hub["sla_status"] == "met" and hub["sal_at"] is not None and hub["sql_at"] is not None
    sf = lead_row(database_url, "00Q8d00000XyZ1")
    assert sf is not None
    assert (sf["stage"], sf["source"], sf["owner_id"]) == ("lost", "web", "005AA")
    assert (sf["lost_reason"], sf["opportunity_id"]) == ("price", "0068d00000Qw7P")
    # Closed - Converted means sales accepted it: mql is entered too, inferred at the same time.
    assert sf["first_contact_at"] is not None and sf["mql_at"] == sf["sal_at"] is not None
