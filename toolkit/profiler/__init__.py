"""Profiling an artifact in its real runtime against a device profile: timing and memory, the native and
browser clients, host calibration, parity, arm64 verification."""
