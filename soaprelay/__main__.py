"""``python -m soaprelay``: the same as the ``soaprelay`` command."""

import sys

from soaprelay.cli import main

if __name__ == "__main__":
    sys.exit(main())
