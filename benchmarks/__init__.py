"""Benchmarks: Relier against vanilla Celery on one private Redis server.

Run: ``python -m benchmarks.run`` (``--quick`` for a smoke run).
"""
