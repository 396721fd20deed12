"""Checking migrations: the checker, QEMU's known divergences and old formats' limits, reports, the matrix."""
