"""Event schemas of contract section 2 and the dead-letter classifier."""
