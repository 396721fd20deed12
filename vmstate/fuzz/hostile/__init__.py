"""Hostile streams: what restoring an attacker's bytes may and may not do.

A migration stream comes from outside, so every byte of it is hostile.  For
ANY input, :func:`migration.restore` may only succeed or raise a
:class:`StreamError` that names a byte offset; it must not raise anything
else, run for long, allocate more than ``probe.ALLOCATION_BOUND``, or change
the destination (not even its virtual clock) when it refuses.  A stream it
accepts must give a machine that saves again.

``probe`` checks one input against those rules; ``campaign`` feeds it
mutations of valid streams saved from busy machines (the scenarios run up to
their first ``migrate`` line, and QEMU 7.2's own device sections) and
arbitrary bytes, and keeps one small input per kind of refusal as a
regression corpus (``fixtures/hostile/``).

The package: ``probe`` (the rules, for one input), ``seeds`` (valid streams
and where their values lie), ``mutations`` (what an attacker does to them),
``corpus`` (the inputs kept, one per kind of refusal) and ``campaign``.
"""
