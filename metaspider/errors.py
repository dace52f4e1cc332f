"""One exception type the CLI knows how to print: every message is meant for the user to act on."""


class MetaspiderError(Exception):
    """An error a user can fix: the message says what was expected and where."""
