"""The core: clocks, address spaces, interrupt wires, errors, observations, state.

It imports neither ``devices`` nor ``schemas``."""
