"""Masking secrets before anything is logged or shown: URI passwords, secret-looking keys.

Dependency-free, so the sweeper plugin can name a storage in a message without
importing the tracking side.
"""

from __future__ import annotations

import re

# config keys whose values are never logged
SECRET_KEY = re.compile(r"(?i)(password|passwd|token|secret|credential|(^|_)key$|api_?key)")


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``: safe to log."""
    return re.sub(r"(//[^/:@\s]+):[^/@\s]*@", r"\1:***@", uri)


def redact_overrides(overrides: list[str]) -> list[str]:
    """Command-line overrides safe to log: secret-looking values and URI passwords masked."""
    safe = []
    for override in overrides:
        key, sep, value = override.partition("=")
        secret = sep and SECRET_KEY.search(key.rsplit(".", 1)[-1])
        safe.append(f"{key}=***" if secret else redact_uri(override))
    return safe
