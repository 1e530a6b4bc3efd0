"""User-facing errors: the CLI prints them as one line, never a traceback."""


class ClipfitError(Exception):
    """A mistake in the user's input (a path, a value, a dataset): say what and what to do."""
