"""Foundations every stage uses: errors, units, the cache, device profiles, the artifact contract, the build
log, pinned wheels and the machine's backports suite. Imports nothing above it."""
