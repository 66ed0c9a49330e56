"""The launcher of ``cluster=ray``: each job of a sweep as a task on a running Ray cluster.

The ``cluster`` config group picks Hydra's launcher: ``local`` (the basic launcher, one
job after another), ``joblib`` (this machine's cores) and ``ray``, which is this
:class:`RayLauncher`. It is Hydra's Ray launcher plugin, completed for a cluster the
sweep does not own:

- it connects to the cluster at ``hydra.launcher.ray.init.address`` (``RAY_ADDRESS``) and
  fails in one message, before any job, when no cluster answers there;
- it refuses SQLite stores (the tracking store, the Optuna storage) when the cluster has
  more than one node, since jobs elsewhere would write files of their own;
- jobs get the sweep's tracking context through their tasks' ``runtime_env``: the driver's
  environment does not reach a Ray worker, and without the parent run's id, the
  resolved tracking URI and the checkout's root a job would log to another store or
  outside the sweep's parent; and the sweep dir made absolute, as a Ray job runs in the
  directory its node's Ray was started from;
- an interrupted sweep cancels its tasks, so each job closes its run as KILLED instead
  of training on with nobody waiting for it.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from tssweep.errors import BadInput

log = logging.getLogger(__name__)

# What a job needs from the driver's environment; credentials are not shipped (Ray
# shows a runtime_env to anyone who can see the cluster): set them on the workers.
FORWARDED_ENV = ("TSSWEEP_ROOT", "NUMBA_CACHE_DIR", "TSSWEEP_MODEL_TEMPLATES", "MLFLOW_DISABLE_TELEMETRY")
_CANCEL_GRACE_SECONDS = 20
TARGET = f"{__name__}.RayLauncher"


def job_environment(config: DictConfig) -> dict[str, str]:
    """The environment variables every Ray task of this sweep gets.

    ``MLFLOW_TRACKING_URI`` is the URI the driver resolved (from the variable or from
    ``tracking.uri``), so a job logs to the same store as the parent whatever its node's
    environment holds.
    """
    from tssweep import tracking  # imported here: Hydra imports this module at every start

    env = {name: os.environ[name] for name in (*FORWARDED_ENV, tracking.PARENT_RUN_ENV)
           if os.environ.get(name)}
    env["MLFLOW_TRACKING_URI"] = tracking.open_store(config.tracking).uri
    return env


def check_cluster(config: DictConfig) -> None:
    """Connect to the cluster before the sweep's parent run exists, and fail in one
    message when ``cluster=ray`` cannot work: Ray or its Hydra launcher not installed, no
    Ray head at the address, or a store on this machine's disk (SQLite) while the jobs run
    on other machines too."""
    try:
        import ray
        from hydra_plugins.hydra_ray_launcher import ray_launcher  # noqa: F401
    except ImportError as err:
        raise BadInput("cluster", "ray", f"needs Ray and Hydra's Ray launcher ({err}).",
                       "cluster=local or cluster=joblib; or install the extra: `make stack-up` "
                       "does, or `pip install -e '.[ray]'` then `pip install --no-deps "
                       "hydra-ray-launcher==1.2.2`") from None
    init = OmegaConf.to_container(config.hydra.launcher.ray.init, resolve=True)
    init.pop("object_store_memory", None)  # Ray refuses it when joining a cluster
    address = init["address"] = str(init.get("address") or "auto")
    if not ray.is_initialized():
        try:
            _probe(address)
            ray.init(**init)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise _no_cluster(address, err) from None
        log.info("Ray cluster at %s: %d node(s), %s CPUs", address,
                 sum(node["Alive"] for node in ray.nodes()), ray.cluster_resources().get("CPU", 0))
    nodes = sum(node["Alive"] for node in ray.nodes())
    if nodes > 1:
        _refuse_local_files(config, nodes)


def _refuse_local_files(config: DictConfig, nodes: int) -> None:
    """A SQLite file is on one machine: jobs on the others would write their own."""
    from tssweep import tracking

    uri, key = tracking.resolved_uri(config.tracking)
    if uri.startswith(("sqlite:", "file:", "/", "./", "../")) or (":" not in uri and "/" in uri):
        raise BadInput(key, uri, f"is a file on this machine, and the Ray cluster has "
                       f"{nodes} nodes: jobs elsewhere would log to a store of their own.",
                       "tracking=server with the URI of an MLflow server every node reaches")
    storage = str(config.hydra.sweeper.get("storage") or "")
    if storage.startswith("sqlite:"):
        raise BadInput("hydra.sweeper.storage", storage, f"is a file on this machine, and the Ray "
                       f"cluster has {nodes} nodes: trials elsewhere report to a study of their own.",
                       "a database every node reaches, e.g. postgresql+psycopg://user@host:5432/optuna")


def _no_cluster(address: str, err: Exception) -> BadInput:
    return BadInput("hydra.launcher.ray.init.address", address,
                    f"no Ray cluster answers there ({str(err).splitlines()[0]}).",
                    "the address of a running Ray head (host:port, e.g. "
                    "RAY_ADDRESS=10.0.0.5:6379); for the local stack, `make stack-up` and run "
                    "the command through `.venv/bin/python -m tssweep.stack exec --`; or "
                    "cluster=local")


try:
    from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as _PluginRayLauncher
except ImportError:  # the [ray] extra is not installed: check_cluster() says so
    _PluginRayLauncher = object  # type: ignore[misc,assignment]


class RayLauncher(_PluginRayLauncher):  # type: ignore[misc,valid-type]
    """Hydra's Ray launcher for a cluster that is already running (see the module)."""

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        check_cluster(config)  # connected already by the sweep callback's checks: a no-op

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray
        from hydra_plugins.hydra_ray_launcher._launcher_util import launch_job_on_ray

        setup_globals()
        # absolute: a Ray job runs in the directory its node's Ray was started from
        sweep_dir = os.path.abspath(str(self.config.hydra.sweep.dir))
        os.makedirs(sweep_dir, exist_ok=True)
        log.info("Ray is launching %d jobs, sweep dir %s", len(job_overrides), sweep_dir)
        # the parent run exists by now: its id and the store go to each task
        remote = OmegaConf.to_container(self.ray_cfg.remote, resolve=True) or {}
        runtime_env = dict(remote.get("runtime_env") or {})
        runtime_env["env_vars"] = {**(runtime_env.get("env_vars") or {}), **job_environment(self.config)}
        remote = OmegaConf.create({**remote, "runtime_env": runtime_env})
        tasks = []
        try:
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
                sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
                with open_dict(sweep_config):
                    sweep_config.hydra.sweep.dir = sweep_dir
                    sweep_config.hydra.job.id = f"ray_{idx}"
                    sweep_config.hydra.job.num = idx
                tasks.append(launch_job_on_ray(self.hydra_context, remote, sweep_config,
                                               self.task_function, Singleton.get_state()))
            return ray.get(tasks)
        except BaseException:
            _cancel(tasks)
            raise


def _probe(address: str, timeout: float = 5.0) -> None:
    """Raise ``ConnectionError`` in seconds when nothing listens at ``host:port``: Ray
    itself would keep retrying for minutes. ``auto`` and ``ray://`` are Ray's to resolve."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as err:
        raise ConnectionError(f"cannot connect to {address}: {err}") from None


def _cancel(tasks: list) -> None:
    """Stop the sweep's tasks: a KeyboardInterrupt in each, so each job closes its run as
    KILLED; the ones still running after a grace period are killed."""
    import ray

    pending = [task for task in tasks if not ray.wait([task], timeout=0)[0]]
    for task in pending:
        ray.cancel(task)
    if pending:
        log.warning("Cancelling %d Ray tasks of the interrupted sweep", len(pending))
        _, stuck = ray.wait(pending, num_returns=len(pending), timeout=_CANCEL_GRACE_SECONDS)
        for task in stuck:
            ray.cancel(task, force=True)
