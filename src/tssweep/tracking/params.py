"""What a run records about its inputs: the config as params, the code as git tags."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from functools import lru_cache

from omegaconf import DictConfig, OmegaConf

from tssweep.redact import SECRET_KEY, redact_uri

_MAX_PARAM_LENGTH = 6000


def flatten(cfg: DictConfig | Mapping) -> dict[str, str]:
    """Every leaf of a config (resolved here, or already as plain containers) as
    ``group.key`` -> string, MLflow's param shape.

    Keys that look like secrets (password, token, secret, key) are left out, and
    credentials inside URIs are masked: params are readable by anyone with the store.
    """
    flat: dict[str, str] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif not SECRET_KEY.search(prefix.rsplit(".", 1)[-1]):  # scalars and lists
            flat[prefix] = redact_uri(str(node))[:_MAX_PARAM_LENGTH]

    walk(OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg, "")
    return flat


@lru_cache(maxsize=None)
def source_tags(root_dir: str) -> dict[str, str]:
    """Git commit and dirty flag of the checkout that ran, so a result can be reproduced."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", root_dir, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git.commit": "unknown"}
    return {"git.commit": commit, "git.dirty": str(dirty).lower(), "mlflow.source.git.commit": commit}


