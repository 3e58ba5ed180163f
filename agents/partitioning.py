"""Kafka's default partitioner on a key: murmur2, computed a word at a time."""

from __future__ import annotations

from struct import Struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS: dict[int, Struct] = {}


def murmur2(data: bytes) -> int:
    """The Java client's ``Utils.murmur2`` as an unsigned 32-bit int (kafka-python's value).

    kafka-python assembles each 4-byte word from single bytes, about 4 µs for a lead id;
    a lead id is hashed several times per event (the partition it must sit on, the lifecycle
    and changelog records), so this reads the words with one ``struct`` call.
    """
    length = len(data)
    h = _SEED ^ length
    count = length >> 2
    words = _WORDS.get(count)
    if words is None:
        words = Struct(f"<{count}I")
        if count <= 64:  # lead ids; a longer key is rare and not worth keeping a format for
            _WORDS[count] = words
    for k in words.unpack_from(data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    extra = length & 3
    if extra:
        tail = length - extra
        if extra == 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def key_hash(key: bytes) -> int:
    """What Kafka's default partitioner takes modulo the partition count: murmur2, positive."""
    return murmur2(key) & 0x7FFFFFFF


def partition_of(lead_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a ``lead_id`` key."""
    return key_hash(lead_id.encode()) % partitions
