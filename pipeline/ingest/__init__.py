"""`leadflow ingest`: the HTTP way in for producers that cannot speak Kafka (contract section 9)."""
