"""Traces: QEMU's qtest protocol, trace loading, and the QEMU 7.2 reference."""
