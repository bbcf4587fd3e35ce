"""``python -m cdrscreen`` runs the command-line interface."""

import sys

from cdrscreen.cli import main

sys.exit(main())
