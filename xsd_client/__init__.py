"""xsd_client: talk to a xenstore daemon (xsd or Xen's own) over its Unix socket.

Importing this package never imports trio; the trio client lives in ``xsd_client.aio``.
"""
