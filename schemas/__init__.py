"""Event schemas of docs/contract.md, section 2 and the dead-letter classifier."""
