"""QEMU's wire format: description tables, the generated codec, sections, streams, snapshots."""
