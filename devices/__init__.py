"""Deterministic models of the timer devices on QEMU 7.2's ``pc`` machine.

Each device is driven by guest accesses through its :class:`vmstate.core.bus.Region`
and by timers on :mod:`vmstate.core.clock`, and keeps its whole state in one
explicit state object (``get_state``/``set_state``) that the schemas serialize.
"""
