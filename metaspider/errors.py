"""One exception type the CLI knows how to print: every message is meant for the user to act on."""


class MetaspiderError(Exception):
    """An error a user can fix: the message says what was expected and where."""


class ContextOverflowError(MetaspiderError):
    """One prompt is longer than the model's whole context window: the message gives both sizes."""
