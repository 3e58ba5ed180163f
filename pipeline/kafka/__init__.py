"""Kafka plumbing: topic names and creation, producers, the embedded broker."""
