"""A task module that registers nothing (the worker should warn about it)."""
