"""ModelCI Hub: a model registry and profiling service behind a typed GraphQL API.

Rooms (ARCHITECTURE.md draws them): ``core`` (the domain, its rules and ports),
``schema`` (the GraphQL surface), ``server`` (the app and its storage), ``cage``
(untrusted model files), ``profiling`` (conversion, profilers, the worker), the public
client (``modelci.client``) and its command line (``modelci.cli``).
"""

__version__ = "0.1.0"
