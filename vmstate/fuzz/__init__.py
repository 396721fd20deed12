"""Fuzzing: campaigns of random scenarios, hostile streams, the pytest plugin."""
