"""xsd_client: talk to a xenstore daemon (xsd or Xen's own) over its Unix socket.

Importing this package never imports trio; the trio client lives in ``xsd_client.aio``.
"""

from xsd_client import _compiled

_compiled.CLIENT.guard()  # a compiled module whose source changed since runs from its source
