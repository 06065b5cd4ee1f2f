"""``python -m signer``: see :mod:`signer.cli`."""

import sys

from .cli import main

sys.exit(main())
