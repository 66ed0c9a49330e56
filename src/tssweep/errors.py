"""The one exception type for mistakes the user can fix.

Anything raised as :class:`BadInput` is the user's to fix (a wrong override, a broken
file), so its message names the key, the value and what is allowed, in one paragraph.
Every other exception is a bug or an environment failure and keeps its traceback.
"""


class BadInput(ValueError):
    """A config value or input file that cannot work, explained for the terminal.

    Parameters
    ----------
    key : str
        The config key, as typed on the command line (``dataset.target``).
    value : object
        The value that was given.
    problem : str
        What is wrong with it.
    allowed : str, optional
        What would be accepted instead.
    """

    def __init__(self, key: str, value: object, problem: str, allowed: str | None = None):
        self.key = key
        self.value = value
        message = f"{key}={value!r}: {problem}"
        if allowed:
            message += f" Allowed: {allowed}."
        super().__init__(message)
