"""The default App, which ``@rl_task`` registers with.

Its settings come from ``RELIER_*`` environment variables, read when it is first used.
"""

from relier.app import App

app = App()

__all__ = ["app"]
