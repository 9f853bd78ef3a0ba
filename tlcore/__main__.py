"""``python -m tlcore``: see ``tlcore.cli``."""

import sys

from tlcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
