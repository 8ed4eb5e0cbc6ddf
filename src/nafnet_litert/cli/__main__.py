"""``python -m nafnet_litert.cli`` = ``nafnet-litert``."""

import sys

from . import main

sys.exit(main())
