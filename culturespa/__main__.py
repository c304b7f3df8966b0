"""``python -m culturespa show-prompt ...`` (see culturespa.cli)."""

import sys

from .cli import main

sys.exit(main())
