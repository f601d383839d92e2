"""The base class of the generated client (ariadne-codegen ``base_client_file_path``).

The code generator copies this file into ``modelci/graphql_client/``; the transport
itself (keep-alive connections, streamed multipart uploads, typed hub errors) lives in
``modelci.transport``, written and checked like the rest of the package.
"""

from modelci.transport import Transport


class HubTransport(Transport):
    """What every generated operation sends its request through."""
