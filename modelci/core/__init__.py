"""The core of ModelCI Hub: the domain, its rules and the ports they need.

``domain`` (models, jobs, profiles), ``errors`` (one class per error code),
``identity`` (scopes and callers), ``weight_formats`` (which format converts to which
engine), ``choosing`` (ranking measured models), ``usecases`` (every rule of a change)
and ``ports`` (the repositories the use cases and resolvers read and write through).
Nothing here imports a web framework, a database driver or torch: the GraphQL surface
(``modelci.schema``), the server and the worker depend on this package, never the
other way.
"""
