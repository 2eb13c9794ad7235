"""``relier demo``: the product on a private server, with nothing to set up."""

from relier.demo.runner import run_demo

__all__ = ["run_demo"]
