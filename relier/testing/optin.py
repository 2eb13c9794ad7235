"""The ``pytest11`` entry point of ``relier.testing``: it loads no fixture by itself.

Installing relier must not add fixtures to every pytest run of every project. This
module only declares two ini options; the fixtures load when a project asks for them:
``-p relier.testing``, ``pytest_plugins = ["relier.testing"]`` in a conftest, or
``relier_fixtures = true`` in its pytest configuration.
"""

from __future__ import annotations

import pytest

PLUGIN: str = "relier.testing"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("relier_fixtures", type="bool", default=False,
                  help="load relier.testing's fixtures (relier_app, relier_worker, ...)")
    parser.addini("relier_app", default="",
                  help="the App relier_app points at the test server, as `relier worker -A` "
                       "takes it (module, or module:app); default: RELIER_APP, "
                       "[tool.relier] app, else the default App")


def pytest_configure(config: pytest.Config) -> None:
    if config.getini("relier_fixtures") and not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
