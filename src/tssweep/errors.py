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


def instantiate(config, **kwargs):
    """``hydra.utils.instantiate`` that lets a :class:`BadInput` from the target through.

    Hydra wraps whatever a ``_target_`` raises in an ``InstantiationException`` whose
    message starts with Hydra's internals; the user's mistake is the cause, so that is
    what is raised.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(config, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, BadInput):
            raise err.__cause__ from None
        raise
