"""Errors a user can fix. The CLI prints them as one line and exits 1, never a traceback."""


class UserError(Exception):
    """A mistake in the user's input, config or command line; the message is the whole story."""
