"""Publishing events: JSON Lines files and simulated traffic."""
