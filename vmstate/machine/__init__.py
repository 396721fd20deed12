"""The pc machine and migration: where devices, schemas and the wire format meet."""
