"""The one exception type for mistakes a user can make and fix (bad data, bad params)."""


class UserError(Exception):
    """A problem in the user's data or configuration, with a message that says what to do.

    Stage entry points print the message alone (no stack trace) and exit with status 2.
    """


class Interrupted(Exception):
    """A run stopped on request (Ctrl-C, SIGTERM) at a clean point; its message is one line saying where a
    re-run resumes. Stage entry points print it alone and exit with ``128 + signum``, as the shell does."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
