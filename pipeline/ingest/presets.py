"""LEADFLOW_INGEST_PRESETS: a YAML file enabling the HubSpot and Salesforce hooks and their maps.

A stage mapped to null is known and publishes nothing; a stage missing from its map is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from leadflow.schemas.errors import LeadflowError

ContactTarget = Literal[
    "lead.created", "lead.mql", "lead.assigned", "lead.contacted", "lead.accepted"
]
DealTarget = Literal["opportunity.created", "deal.won", "deal.lost"]
LeadTarget = Literal[
    "lead.created", "lead.mql", "lead.assigned", "lead.contacted", "lead.accepted", "lead.rejected"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSpotPreset(_Strict):
    """POST /v1/hooks/hubspot: workflow webhooks and webhook-API arrays, v3 signature checked."""

    client_secret: str | None = Field(default=None, repr=False, min_length=1)
    client_secret_file: str | None = None
    # The URL HubSpot calls, up to the path (TLS terminates before ingest, so the scheme and
    # host ingest sees differ from the ones HubSpot signed).
    public_url: str | None = None
    max_age_seconds: float = Field(default=300.0, gt=0, le=3600)
    default_source: str = Field(default="hubspot", min_length=1)
    default_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    lifecycle_stages: dict[str, ContactTarget | None] = {
        "lead": "lead.created",
        "marketingqualifiedlead": "lead.mql",
        "salesqualifiedlead": "lead.accepted",
        "opportunity": None,
        "customer": None,
    }
    deal_stages: dict[str, DealTarget | None] = {
        "appointmentscheduled": "opportunity.created",
        "qualifiedtobuy": "opportunity.created",
        "closedwon": "deal.won",
        "closedlost": "deal.lost",
    }

    @model_validator(mode="after")
    def _one_secret(self) -> HubSpotPreset:
        if (self.client_secret is None) == (self.client_secret_file is None):
            raise ValueError("give exactly one of client_secret and client_secret_file")
        return self

    def secret(self) -> bytes:
        if self.client_secret is not None:
            return self.client_secret.encode("utf-8")
        return Path(str(self.client_secret_file)).read_text(encoding="utf-8").strip().encode()


class SalesforcePreset(_Strict):
    """POST /v1/hooks/salesforce: Flow HTTP callouts carrying a Lead or Opportunity record."""

    default_source: str = Field(default="salesforce", min_length=1)
    # The Opportunity field holding the leadflow lead_id (a custom field the flow fills).
    opportunity_lead_field: str = Field(default="Lead_Id__c", min_length=1)
    lead_statuses: dict[str, LeadTarget | None] = {
        "Open - Not Contacted": "lead.created",
        "Working - Contacted": "lead.contacted",
        "Closed - Converted": "lead.accepted",
        "Closed - Not Converted": "lead.rejected",
    }
    opportunity_stages: dict[str, DealTarget | None] = {
        "Prospecting": "opportunity.created",
        "Qualification": "opportunity.created",
        "Closed Won": "deal.won",
        "Closed Lost": "deal.lost",
    }


class Presets(_Strict):
    hubspot: HubSpotPreset | None = None
    salesforce: SalesforcePreset | None = None


def load_presets(path: str | None) -> Presets:
    """The presets file (JSON is valid YAML); no file means no hooks."""
    if not path:
        return Presets()
    import yaml  # type: ignore[import-untyped]

    file = Path(path)
    if not file.is_file():
        raise LeadflowError(f"LEADFLOW_INGEST_PRESETS names {path}, which is not a file")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        presets = Presets.model_validate(data)
        if presets.hubspot is not None:
            presets.hubspot.secret()
    except (yaml.YAMLError, OSError) as exc:
        raise LeadflowError(f"cannot read the presets file {path}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise LeadflowError(f"the presets file {path} is invalid: {problems}") from None
    return presets
