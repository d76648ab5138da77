"""``python -m sbi_gen.cli``: the same as the ``sbi-gen`` command."""

import sys

from sbi_gen.cli import main

sys.exit(main())
