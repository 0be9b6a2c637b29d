"""``python -m orb_bridge_dev.orb_sandbox``: see ``orb_bridge_dev.orb_sandbox.cli``."""

from orb_bridge_dev.orb_sandbox.cli import main

raise SystemExit(main())
