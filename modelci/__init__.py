"""ModelCI Hub: a model registry and profiling service behind a typed GraphQL API.

The code lives in three top-level folders, installed as sub-packages:
``schema/`` (``modelci.schema``), ``server/`` (``modelci.server``) and
``profiling/`` (``modelci.profiling``).
"""

__version__ = "0.1.0"
