"""User-facing errors: the CLI prints them as one line, never a traceback."""


class ClipfitError(Exception):
    """A mistake in the user's input (a path, a value, a dataset): say what and what to do. Always one line: a line
    break inside (from a value quoted in the message) is written as \\n."""

    def __init__(self, message: str = ""):
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


def require(module: str, what: str, package: str, extra: str = "data"):
    """Import `module`, or a one-line error saying which package (and which clipfit extra) to install for `what`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ClipfitError(f"{what} needs {package}, which the plain install leaves out: pip install {package} "
                           f"(or pip install 'clipfit[{extra}]')") from None
