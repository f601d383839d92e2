"""The ``modelci`` command: client commands over the public client (``modelci.client``),
and the commands that run the hub's own processes (``serve``, ``worker``, ``token``,
``export``, ``import``)."""

from .main import app

__all__ = ["app"]
