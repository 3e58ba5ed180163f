"""Helpers shared by the tests: fault injection, golden scenarios, fixtures."""
