"""`python -m vlmgrpo ...` is the `vlmgrpo` command."""

import sys

from vlmgrpo.cli import main

sys.exit(main())
