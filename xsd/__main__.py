"""``python -m xsd``: run the daemon."""

from xsd.server.main import main

raise SystemExit(main())
