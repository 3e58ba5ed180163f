"""Replacements of faust-streaming and aiokafka internals, each pinned to the version it fits."""
