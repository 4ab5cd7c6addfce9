"""How a stage script turns a user mistake, or a Ctrl-C in training, into one clear line instead of a stack trace."""

from __future__ import annotations

import sys
from collections.abc import Callable

from globallocal import atomic
from globallocal.errors import Interrupted, UserError

#: Exit status of a stage stopped by a user error (bad params, bad data).
USER_ERROR_STATUS = 2
#: A stage stopped by signal N exits with 128 + N (130 for Ctrl-C, 143 for SIGTERM).
SIGNAL_STATUS_BASE = 128


def run_stage(main: Callable[[], None]) -> None:
    """Call ``main``; on a UserError print ``error: <message>`` to stderr and exit with status 2; on a training
    run stopped by a signal (Interrupted) print its line and exit with ``128 + signum``, as the shell does.

    Unfinished staging folders (atomic.staging_dir) are removed first: no partial artifact stays behind.
    """
    try:
        main()
    except UserError as error:
        atomic.discard_unfinished()
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)
    except Interrupted as stop:
        atomic.discard_unfinished()
        print(stop, file=sys.stderr)
        sys.exit(SIGNAL_STATUS_BASE + stop.signum)
