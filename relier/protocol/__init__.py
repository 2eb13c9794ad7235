"""Celery's wire formats (task messages, results, key names) and Relier's Lua scripts.

Nothing here talks to Redis or an event loop; it only turns values into bytes and back.
"""
