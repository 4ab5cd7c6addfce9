"""The one exception type for mistakes a user can make and fix (bad data, bad params)."""


class UserError(Exception):
    """A problem in the user's data or configuration, with a message that says what to do.

    Stage entry points print the message alone (no stack trace) and exit with status 2.
    """
