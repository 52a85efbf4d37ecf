"""The one exception type that means "the user gave us something we cannot use"."""


class UsageError(Exception):
    """Bad input: a missing or corrupt file, a bad flag value, an unreachable weight source.

    Command-line apps report it as one line on stderr and exit with code 2 (see cli.run);
    library callers get an ordinary exception with a message meant for a person.
    """
