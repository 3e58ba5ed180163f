"""Request bodies: read under a size limit (after Content-Encoding), split into raw events."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

MAX_BODY_BYTES = 5 * 1024 * 1024
JSON_LINES_TYPES = frozenset({"application/x-ndjson", "application/jsonl"})
_CHUNK = 64 * 1024
# A gzip stream is at most a few bytes per 32 KiB block larger than what it holds.
_RAW_SLACK = 64 * 1024


class BodyError(Exception):
    """A body the door cannot read; ``status`` is the HTTP answer (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class LineError:
    """A JSON Lines line that is not JSON: refused at its index as invalid_json."""

    error: str


Item = bytes | LineError


def _decoder(encoding: str) -> zlib._Decompress | None:
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return zlib.decompressobj()
    raise BodyError(415, f"Content-Encoding {encoding!r} is not supported (use gzip or none)")


def _too_large() -> BodyError:
    return BodyError(413, f"the body is over {MAX_BODY_BYTES} bytes (5 MiB) once decoded")


def _inflate(decoder: zlib._Decompress, chunk: bytes, size: int) -> bytes:
    """Decompress ``chunk`` without ever producing more than one byte past the limit."""
    out = bytearray()
    data = chunk
    while True:
        room = MAX_BODY_BYTES - size - len(out) + 1
        try:
            out += decoder.decompress(data, room)
        except zlib.error as exc:
            raise BodyError(400, f"the body is not valid for its Content-Encoding: {exc}") from None
        if size + len(out) > MAX_BODY_BYTES:
            raise _too_large()
        data = decoder.unconsumed_tail
        if not data:
            return bytes(out)


async def read_body(chunks: AsyncIterator[bytes], encoding: str) -> bytes:
    """The decoded body; 413 as soon as it passes 5 MiB, decompressed chunk by chunk."""
    decoder = _decoder(encoding)
    raw_limit = MAX_BODY_BYTES if decoder is None else MAX_BODY_BYTES + _RAW_SLACK
    body = bytearray()
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > raw_limit:
            raise _too_large()
        body += chunk if decoder is None else _inflate(decoder, chunk, len(body))
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    if decoder is not None and not decoder.eof and received:
        raise BodyError(400, "the compressed body ends before its compressed stream does")
    return bytes(body)


def is_json_lines(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in JSON_LINES_TYPES


def split_json(body: bytes) -> list[Item]:
    """One event or an array of events, each re-encoded as the bytes the pipeline would read."""
    if not body.strip():
        raise BodyError(400, "the body is empty; send one event, an array or JSON Lines")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, f"the body is not UTF-8 JSON: {exc}") from None
    values = parsed if isinstance(parsed, list) else [parsed]
    return [orjson.dumps(value) for value in values]


def split_json_lines(body: bytes) -> list[Item]:
    """Each non-blank line is one event, kept as sent; a line that is not JSON is a LineError."""
    items: list[Item] = []
    for line in body.split(b"\n"):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            items.append(LineError(f"the line is not UTF-8 JSON: {exc}"))
            continue
        items.append(stripped)
    if not items:
        raise BodyError(400, "the body has no JSON Lines; send one event per line")
    return items
