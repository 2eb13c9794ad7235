"""The worker: one event loop that fetches, runs and settles tasks (see docs/architecture.md)."""
