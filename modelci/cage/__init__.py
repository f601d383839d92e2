"""Untrusted model files: recognising a file's format, refusing what is unsafe to load,
and the cage every load of an uploaded model runs in.

``formats`` reads a file without running it (format, declared inputs, operators a
TorchScript archive calls, whether a pickle holds weights only); ``tensors`` the shapes
of a model's inputs; ``runner`` starts a step in the cage and checks every message it
sends back; ``program`` is what runs inside; ``inspect_step`` the server's own step (a
TorchScript archive's load). The server and the worker both use this package; it uses
neither.
"""
