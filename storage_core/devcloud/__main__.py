"""``python -m storage_core.devcloud``: the same as ``fuxi-devcloud``."""

import sys

from storage_core.devcloud.cli import main

if __name__ == "__main__":
    sys.exit(main())
