"""``python -m tlcore``: see ``tlcore.cli``."""

import sys


def _run() -> int:
    try:
        from tlcore.cli import main

        return main()
    except KeyboardInterrupt:  # Ctrl-C while the libraries load, before main's own handler: no traceback
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(_run())
