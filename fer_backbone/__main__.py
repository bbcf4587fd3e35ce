"""``python -m fer_backbone``: same as ``cdrscreen-fer``."""

import sys

from fer_backbone.cli import main

sys.exit(main())
