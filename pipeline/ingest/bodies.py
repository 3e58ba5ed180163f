"""Request bodies: read under a size limit (after Content-Encoding), split into raw events."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

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


def _too_large() -> BodyError:
    return BodyError(413, f"the body is over {MAX_BODY_BYTES} bytes (5 MiB) once decoded")


class _Inflater:
    """gzip (every member of a multi-member stream) or deflate, never past the limit."""

    def __init__(self, gzip: bool) -> None:
        self.wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
        self.gzip = gzip
        self.decoder = zlib.decompressobj(self.wbits)

    @property
    def complete(self) -> bool:
        return self.decoder.eof

    def feed(self, chunk: bytes, size: int) -> bytes:
        """Decompress ``chunk``, producing at most one byte past the limit before a 413."""
        out = bytearray()
        data = chunk
        while data:
            room = MAX_BODY_BYTES - size - len(out) + 1
            try:
                out += self.decoder.decompress(data, room)
            except zlib.error as exc:
                raise BodyError(
                    400, f"the body is not valid for its Content-Encoding: {exc}"
                ) from None
            if size + len(out) > MAX_BODY_BYTES:
                raise _too_large()
            data = self.decoder.unconsumed_tail or self._next_member()
        return bytes(out)

    def _next_member(self) -> bytes:
        rest = self.decoder.unused_data if self.decoder.eof else b""
        if rest and not self.gzip:
            raise BodyError(400, "the body goes on after the end of its deflate stream")
        if rest:
            self.decoder = zlib.decompressobj(self.wbits)
        return rest


def _inflater(encoding: str) -> _Inflater | None:
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip", "deflate"):
        return _Inflater(gzip=name != "deflate")
    raise BodyError(415, f"Content-Encoding {encoding!r} is not supported (use gzip or none)")


async def read_body(chunks: AsyncIterator[bytes], encoding: str) -> bytes:
    """The decoded body; 413 as soon as it passes 5 MiB, decompressed chunk by chunk."""
    inflater = _inflater(encoding)
    raw_limit = MAX_BODY_BYTES if inflater is None else MAX_BODY_BYTES + _RAW_SLACK
    body = bytearray()
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > raw_limit:
            raise _too_large()
        body += chunk if inflater is None else inflater.feed(chunk, len(body))
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    if inflater is not None and received and not inflater.complete:
        raise BodyError(400, "the compressed body ends before its compressed stream does")
    return bytes(body)


def is_json_lines(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in JSON_LINES_TYPES


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


# Numbers stay text: each event is published as the bytes the caller sent, digit for digit.
_DECODER = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=_no_constant)
_SPACE = " \t\n\r"


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(400, f"the body is not UTF-8: {exc}") from None


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def _value_end(text: str, pos: int) -> int:
    """Where the JSON value starting at ``pos`` ends; BodyError if there is none."""
    try:
        return int(_DECODER.raw_decode(text, pos)[1])
    except (ValueError, IndexError, RecursionError) as exc:
        raise BodyError(400, f"the body is not JSON: {exc}") from None


def _elements(text: str, pos: int) -> list[str]:
    """The raw text of each element of the array opening at ``pos``."""
    found: list[str] = []
    pos = _skip(text, pos + 1)
    if text.startswith("]", pos):
        return found if _skip(text, pos + 1) == len(text) else _trailing()
    while True:
        end = _value_end(text, pos)
        found.append(text[pos:end])
        pos = _skip(text, end)
        if text.startswith(",", pos):
            pos = _skip(text, pos + 1)
        elif text.startswith("]", pos):
            return found if _skip(text, pos + 1) == len(text) else _trailing()
        else:
            raise BodyError(400, f"the body is not JSON: expected , or ] at character {pos}")


def _trailing() -> list[str]:
    raise BodyError(400, "the body is not JSON: text follows the end of the array")


def split_json(body: bytes) -> list[Item]:
    """One event or an array of events, each as the raw bytes the caller sent."""
    text = _text(body)
    pos = _skip(text, 0)
    if pos == len(text):
        raise BodyError(400, "the body is empty; send one event, an array or JSON Lines")
    if text[pos] == "[":
        return [element.encode("utf-8") for element in _elements(text, pos)]
    end = _value_end(text, pos)
    if _skip(text, end) != len(text):
        raise BodyError(400, "the body is not JSON: text follows the first value")
    return [text[pos:end].encode("utf-8")]


def split_json_lines(body: bytes) -> list[Item]:
    """Each non-blank line is one event, kept as sent; a line that is not JSON is a LineError."""
    items: list[Item] = []
    for line in body.split(b"\n"):
        stripped = line.strip()
        if stripped:
            items.append(_line_item(stripped))
    if not items:
        raise BodyError(400, "the body has no JSON Lines; send one event per line")
    return items


def _line_item(line: bytes) -> Item:
    try:
        text = line.decode("utf-8")
        end = _DECODER.raw_decode(text, 0)[1]
    except (ValueError, IndexError, RecursionError) as exc:
        return LineError(f"the line is not UTF-8 JSON: {exc}")
    if end != len(text):
        return LineError("the line is not JSON: text follows the first value")
    return line
