"""`python -m daw_popular`: the same as the `daw-popular` command."""

import sys

from .cli import main

sys.exit(main())
