"""Lead ids hash to the partition every Kafka client's default partitioner gives them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from leadflow.agents.partitioning import murmur2, partition_of


@given(st.binary(max_size=600))
def test_murmur2_equals_kafka_pythons_for_any_bytes(data: bytes) -> None:
    assert murmur2(data) == kafka_python_murmur2(data)


def test_known_partitions_of_the_java_client() -> None:
    # org.apache.kafka.common.utils.Utils.murmur2 test vectors (signed in Java).
    signed = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    for data, expected in signed.items():
        assert murmur2(data) == expected & 0xFFFFFFFF
    assert partition_of("lead-1", 1) == 0
    assert {partition_of(f"lead-{i}", 8) for i in range(200)} == set(range(8))
