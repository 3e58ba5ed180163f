"""POST /v1/hooks/hubspot and /v1/hooks/salesforce, present when the presets file enables them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from leadflow.pipeline.ingest.bodies import BodyError
from leadflow.pipeline.ingest.door import judge
from leadflow.pipeline.ingest.handling import (
    authorize,
    check_count,
    error,
    publish_verdicts,
    read_limited,
)
from leadflow.pipeline.ingest.hubspot import check_signature, map_hubspot
from leadflow.pipeline.ingest.mapping import Mapped, Refused
from leadflow.pipeline.ingest.presets import HubSpotPreset, SalesforcePreset, load_presets
from leadflow.pipeline.ingest.salesforce import map_salesforce

HUBSPOT: web.AppKey[HubSpotPreset] = web.AppKey("hubspot", HubSpotPreset)
SALESFORCE: web.AppKey[SalesforcePreset] = web.AppKey("salesforce", SalesforcePreset)


def add_hook_routes(app: web.Application, presets_path: str | None) -> None:
    presets = load_presets(presets_path)
    if presets.hubspot is not None:
        app[HUBSPOT] = presets.hubspot
        app.router.add_post("/v1/hooks/hubspot", post_hubspot)
    if presets.salesforce is not None:
        app[SALESFORCE] = presets.salesforce
        app.router.add_post("/v1/hooks/salesforce", post_salesforce)


def _items(request: web.Request, body: bytes) -> list[Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, f"the body is not UTF-8 JSON: {exc}") from None
    items = payload if isinstance(payload, list) else [payload]
    check_count(request, items)
    return items


async def _answer(
    request: web.Request, items: list[Any], mapper: Callable[[Any], Mapped], scope: str
) -> web.Response:
    """Map every item, judge the events as /v1/events does, and publish them."""
    events: list[bytes] = []
    positions: list[int] = []
    early: list[dict[str, Any]] = []
    ignored = 0
    for index, item in enumerate(items):
        mapped = mapper(item)
        if mapped is None:
            ignored += 1
        elif isinstance(mapped, Refused):
            early.append({"index": index, "reason": mapped.reason, "error": mapped.error})
        else:
            events.append(orjson.dumps(mapped))
            positions.append(index)
    verdicts = judge(list(events), scope)
    for refusal in verdicts.refused:
        refusal["index"] = positions[refusal["index"]]
    verdicts.refused = sorted(early + verdicts.refused, key=lambda r: int(r["index"]))
    return await publish_verdicts(request, verdicts, ignored=ignored)


def _signed_uri(request: web.Request, preset: HubSpotPreset) -> str:
    if preset.public_url:
        return preset.public_url.rstrip("/") + request.path_qs
    return str(request.url)


async def post_hubspot(request: web.Request) -> web.Response:
    preset = request.app[HUBSPOT]
    try:
        body = await read_limited(request)
        problem = check_signature(
            preset, request.method, _signed_uri(request, preset), body, request.headers
        )
        if problem is not None:
            return error(401, problem)
        items = _items(request, body)
    except BodyError as exc:
        return error(exc.status, exc.message)
    return await _answer(request, items, lambda item: map_hubspot(item, preset), "all")


async def post_salesforce(request: web.Request) -> web.Response:
    token = authorize(request)
    if isinstance(token, web.Response):
        return token
    preset = request.app[SALESFORCE]
    try:
        items = _items(request, await read_limited(request))
    except BodyError as exc:
        return error(exc.status, exc.message)
    return await _answer(request, items, lambda item: map_salesforce(item, preset), token.scope)
