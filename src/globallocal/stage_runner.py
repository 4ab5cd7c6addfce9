"""How a stage script turns a user mistake into one clear line instead of a stack trace."""

from __future__ import annotations

import sys
from collections.abc import Callable

from globallocal import atomic
from globallocal.errors import UserError

#: Exit status of a stage stopped by a user error (bad params, bad data).
USER_ERROR_STATUS = 2


def run_stage(main: Callable[[], None]) -> None:
    """Call ``main``; on a UserError print ``error: <message>`` to stderr and exit with status 2.

    Unfinished staging folders (atomic.staging_dir) are removed first: no partial artifact stays behind.
    """
    try:
        main()
    except UserError as error:
        atomic.discard_unfinished()
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)
