"""Versioned binary schemas of each device's full state (QEMU's wire format)."""
