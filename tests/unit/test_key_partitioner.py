"""The outbox producer's partitioner picks the partition aiokafka's default one would: every producer of an
order's key (the service's, the API's, a client's Java producer) puts its messages on the same partition."""

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from service.kafka._clients import KeyHashPartitioner, key_hash


@given(key=st.binary(min_size=0, max_size=300), partitions=st.integers(min_value=1, max_value=64))
def test_a_keyed_message_lands_where_the_default_partitioner_puts_it(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert KeyHashPartitioner()(key, every, every) == DefaultPartitioner()(key, every, every)


@given(key=st.binary(min_size=0, max_size=300))
def test_the_compiled_hash_is_the_java_clients_murmur2(key: bytes) -> None:
    """aiokafka's pure-Python murmur2 follows the Java client's `Utils.murmur2`; ours must agree with it."""
    assert key_hash(key) == murmur2(key) & 0x7FFFFFFF


def test_a_known_key_keeps_its_hash() -> None:
    """Pinned (murmur2 of b"ORD-1", positive), so that a change of hash in either partitioner shows here."""
    assert key_hash(b"ORD-1") == 351_068_668
    assert KeyHashPartitioner()(b"ORD-1", [0, 1, 2, 3, 4, 5, 6], []) == 351_068_668 % 7


def test_a_keyless_message_goes_to_an_available_partition() -> None:
    assert KeyHashPartitioner()(None, [0, 1, 2, 3], [2]) == 2
