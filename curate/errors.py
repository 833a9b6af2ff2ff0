"""Errors a user can fix. The CLI prints them as one line and exits 1, never a traceback."""


class UserError(Exception):
    """A mistake in the user's input, config or command line; the message is the whole story.

    The message is kept in its own attribute and is what str() gives: Ray Data appends retry advice
    to the args of an exception raised in a worker, and the attribute travels (pickled) unchanged."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
