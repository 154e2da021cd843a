"""`python -m sitevis.portal COMMAND`: what the portal role runs on the monitor, where the
controller's own dependencies (Ansible, rich) are not installed; `sitevis portal` is
the same on the controller."""

import sys

from sitevis.portal.manage import main

sys.exit(main(sys.argv[1:]))
