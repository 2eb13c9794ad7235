"""Relier against vanilla Celery on one private Redis server: ``python -m benchmarks.run``."""
