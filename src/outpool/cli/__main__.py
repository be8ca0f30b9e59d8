"""``python -m outpool.cli`` (e.g. under torchrun) runs the ``outpool`` command."""

import sys

from outpool.cli.commands import main

sys.exit(main())
