"""The one exception type for mistakes the user can fix.

Anything raised as :class:`BadInput` is the user's to fix (a wrong override, a broken
file), so its message names the key, the value and what is allowed, in one paragraph.
It is a Hydra ``CompactHydraException``: Hydra prints its message without a
traceback, unless ``HYDRA_FULL_ERROR=1``. A single run's task function, wrapped in
:func:`said_alone`, prints it alone. Every other exception is a bug or an environment
failure and keeps its traceback.
"""

import functools
import os
import sys
from typing import NoReturn

from hydra.errors import CompactHydraException


class BadInput(CompactHydraException, ValueError):
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
        self.problem = problem
        self.allowed = allowed
        message = f"{key}={value!r}: {problem}"
        if allowed:
            message += f" Allowed: {allowed}."
        super().__init__(message)

    def within(self, where: str) -> "BadInput":
        """The same mistake, saying where it happened (``in the sweep's job dataset=lynx``)."""
        return BadInput(self.key, self.value, f"{self.problem.rstrip('.')} ({where}).", self.allowed)


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


def check_required(cfg) -> None:
    """Fail when a required value (``???`` in the YAML) was not given on the command line."""
    from omegaconf import OmegaConf

    missing: list[str] = []

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif node == "???":
            missing.append(prefix)

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    if missing:
        also = f"; also missing: {', '.join(missing[1:])}" if len(missing) > 1 else ""
        raise BadInput(missing[0], "???", f"required but not given{also}. Set it on the command "
                       f"line, e.g. {missing[0]}=<value>.")


def exit_with(err: BadInput) -> NoReturn:
    """Print ``err`` alone and exit with code 1: where Hydra would catch it, print it
    and add a hint at a stack trace there is none of."""
    print(err, file=sys.stderr)
    raise SystemExit(1) from None


def said_alone(task):
    """A Hydra task function whose :class:`BadInput`, in a single run, is printed alone
    and exits with code 1. Hydra would frame it between "Error executing job with
    overrides" and a hint at a stack trace there is none of. In a sweep it fails its
    job, as any error does, and the sweep goes on; with ``HYDRA_FULL_ERROR=1``, Hydra
    shows its traceback."""
    @functools.wraps(task)
    def run(cfg):
        try:
            return task(cfg)
        except BadInput as err:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            if HydraConfig.get().mode != RunMode.RUN or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            exit_with(err)
    return run
