"""The search loop: ask Optuna for trials, launch them as Hydra jobs, tell the outcomes.

Built on hydra-optuna-sweeper's ``OptunaSweeperImpl`` (its search-space parsing and
trial configuration are reused as they are); the loop is tssweep's own, to close the
plugin's gaps:

- Resumable: a study that already holds trials runs only the ones missing to reach
  ``n_trials``; Optuna keeps numbering where it stopped.
- Shared: several processes may run the same search on one database study; counting
  the trials and asking for new ones happen under the study's lock
  (``tssweep.shared_study``), and a trial running in another process counts, so
  together they run exactly ``n_trials``.
- Failure-tolerant: a trial that raises is told as FAIL and the search goes on, until
  more than ``max_failure_rate`` of this run's trials have failed (judged once 5 have
  run, so one early failure does not end a search).
- Prunable: each job gets its trial number as ``+optuna_trial=N``; with a storage it
  reports its running backtest score after every fold (``tssweep.pruning``), and a
  trial the pruner stops comes back as ``optuna.TrialPruned`` and is told as PRUNED.
- Grid search: ``hydra/sweeper/sampler=grid`` tries every combination once.
- Checked first: unknown keys or options, empty choices, malformed ranges and a storage
  that cannot be opened stop the search with one message before any trial runs.
- Interrupt-safe: if the launch is interrupted (Ctrl-C, SIGTERM), the trials in flight
  are told as FAIL, marked ``interrupted`` and not counted, before the interrupt goes
  on: the study never keeps phantom RUNNING trials, and a resume redoes them.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from typing import Any, Dict, List, Sequence, Tuple

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_optuna_distribution_from_override,
)
from omegaconf import OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from tssweep import shared_study
from tssweep.errors import BadInput
from tssweep.tracking import redact_uri

log = logging.getLogger(__name__)

TRIAL_OVERRIDE = "+optuna_trial"
INTERRUPTED = "interrupted"
ERROR = "error"  # a failed trial's exception: what makes a FAIL count towards n_trials
_MIN_TRIALS_TO_JUDGE_FAILURES = 5


class ResumableSearch(OptunaSweeperImpl):
    """``OptunaSweeperImpl`` with resuming, failure tolerance, pruning and checks."""

    def __init__(self, *args: Any, pruner: Any = None) -> None:
        super().__init__(*args)
        self.pruner = pruner

    def sweep(self, arguments: List[str]) -> None:
        self._process_searchspace_config()
        distributions, fixed = self._search_space([*self._parse_sweeper_params_config(), *arguments])
        if isinstance(self.sampler, functools.partial) and self.sampler.func is optuna.samplers.GridSampler:
            grid = {name: _grid_values(name, dist) for name, dist in distributions.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(values) for values in grid.values()))
        directions = self._get_directions()
        study = self._open_study(directions)
        log.info("Study %s in %s: %d of %d trials done or running", study.study_name,
                 redact_uri(str(self.storage)), _counted(study), self.n_trials)

        ran = failed = 0
        heartbeat = shared_study.Heartbeat(study)
        while trials := self._ask(study):
            overrides = [(*job, f"{TRIAL_OVERRIDE}={trial.number}") for job, trial in
                         zip(self._configure_trials(trials, distributions, fixed), trials)]
            try:
                with heartbeat.beating(trials):
                    returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
                self.job_idx += len(returns)
                for trial, job in zip(trials, returns):
                    state, values, error = _outcome(job, len(directions))
                    if error:
                        trial.set_user_attr(ERROR, error)
                    _tell(study, trial, state, values)
                    failed += state == TrialState.FAIL
            finally:  # interrupted: no trial of this batch may stay RUNNING
                running = {t.number for t in study.get_trials(deepcopy=False, states=[TrialState.RUNNING])}
                for trial in trials:
                    if trial.number in running:
                        trial.set_user_attr(INTERRUPTED, True)  # not counted: a resume redoes it
                        _tell(study, trial, TrialState.FAIL, None)
            ran += len(trials)
            if ran >= min(_MIN_TRIALS_TO_JUDGE_FAILURES, self.n_trials) and \
                    failed / ran > self.max_failure_rate:
                raise HydraException(
                    f"Search stopped: {failed} of {ran} trials failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}. The failed "
                    "children in MLflow hold each traceback; fix the cause, or raise the rate, "
                    "and run the same command again to resume.")
        self._save_results(study, directions)

    def _ask(self, study: optuna.Study) -> List[optuna.Trial]:
        """The next batch: up to ``n_jobs`` trials, no more than ``n_trials`` still needs
        counting the trials every process has done or is running; none when complete."""
        with shared_study.lock(str(self.storage), self.study_name), warnings.catch_warnings():
            # the heartbeat is experimental in Optuna, and expected to be beaten by
            # optimize(); here shared_study.Heartbeat beats it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            optuna.storages.fail_stale_trials(study)  # trials of a process that died
            missing = self.n_trials - _counted(study)
            return [study.ask() for _ in range(min(missing, self.n_jobs))]

    def _search_space(self, params: List[str]) -> Tuple[Dict[str, BaseDistribution], Dict[str, Any]]:
        """Parse the search space entry by entry, so a bad one is named in the message."""
        parser = OverridesParser.create()
        distributions: Dict[str, BaseDistribution] = {}
        fixed: Dict[str, Any] = {}
        for param in params:
            key = param.split("=", 1)[0]
            try:
                (override,) = parser.parse_overrides([param])
                with warnings.catch_warnings():
                    # the plugin builds Optuna's pre-3.0 distributions: converted below
                    warnings.simplefilter("ignore", FutureWarning)
                    value = _current(create_optuna_distribution_from_override(override))
            except Exception as err:  # Hydra's grammar or Optuna's range checks
                raise BadInput(f"hydra.sweeper.params.{key}", param.split("=", 1)[-1],
                               f"is not a valid search space ({err}).",
                               "choice(a,b,...), range(start,stop,step), interval(low,high), "
                               "tag(log, interval(low,high)), int(interval(low,high))") from err
            self._check_key(override.get_key_element(), value, param.split("=", 1)[-1])
            if isinstance(value, BaseDistribution):
                distributions[override.get_key_element()] = value
            else:
                fixed[override.get_key_element()] = value
        for name in fixed:
            distributions.pop(name, None)
        if self.search_space_distributions:
            distributions = {**self.search_space_distributions, **distributions}
        return distributions, fixed

    def _check_key(self, key: str, value: Any, text: str) -> None:
        """The key must be a config key or a config group, and choices of a group real options."""
        if key.startswith(("+", "~")) or key.startswith("hydra."):
            return
        loader = self.hydra_context.config_loader
        if loader.get_group_options(key):
            options = loader.get_group_options(key)
            choices = value.choices if isinstance(value, CategoricalDistribution) else [value]
            unknown = [c for c in choices if str(c) not in options]
            if unknown:
                raise BadInput(f"hydra.sweeper.params.{key}", unknown[0],
                               f"is not an option of the config group {key!r}.", ", ".join(options))
            return
        task = OmegaConf.masked_copy(self.config, [k for k in self.config if k != "hydra"])
        if OmegaConf.select(task, key, default=_Absent) is _Absent:
            raise BadInput(f"hydra.sweeper.params.{key}", text,
                           "names no key of the composed config (check the spelling with "
                           "`python src/train.py --cfg job`).",
                           "a config key such as model.depth, or a config group such as preprocess")

    def _open_study(self, directions: Sequence[str]) -> optuna.Study:
        """Create or load the study; an unusable storage is named in one message."""
        try:
            # two processes creating a new database's schema at once collide: one at a time
            with shared_study.lock(str(self.storage), self.study_name):
                study = optuna.create_study(study_name=self.study_name,
                                            storage=shared_study.open_storage(str(self.storage)),
                                            sampler=self.sampler, pruner=self.pruner,
                                            directions=list(directions), load_if_exists=True)
        except BadInput:
            raise
        except ValueError as err:
            if "direction" in str(err):
                raise BadInput("hydra.sweeper.direction", list(directions),
                               f"does not match the stored study {self.study_name!r} ({err}).",
                               "the directions the study was created with, or a new study_name") from err
            raise BadInput("hydra.sweeper.storage", redact_uri(str(self.storage)),
                           f"cannot be opened ({err}).",
                           "an Optuna storage URL such as sqlite:///outputs/optuna.db") from err
        except Exception as err:  # SQLAlchemy and driver errors
            raise BadInput("hydra.sweeper.storage", redact_uri(str(self.storage)),
                           f"cannot be opened ({type(err).__name__}: {err}).",
                           "an Optuna storage URL such as sqlite:///outputs/optuna.db") from err
        names = OmegaConf.to_container(OmegaConf.create({"m": self.config.optimized_metric}))["m"]
        names = [names] if isinstance(names, str) else names
        if len(names) == len(directions) and study.metric_names != names:
            with warnings.catch_warnings():  # experimental since Optuna 3.2, still stable
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(names)  # trials.csv columns and plot axes use them
        return study

    def _save_results(self, study: optuna.Study, directions: Sequence[str]) -> None:
        """``optimization_results.yaml`` in the sweep dir, in the plugin's format."""
        complete = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
        if not complete:
            log.warning("No trial completed: no best value to report.")
            return
        if len(directions) == 1:
            best = study.best_trial
            results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            log.info("Best value %s with %s", best.value, best.params)
        else:
            results = {"name": "optuna", "solutions": [
                {"params": t.params, "values": t.values} for t in study.best_trials]}
            log.info("Pareto front of %d trials", len(study.best_trials))
        OmegaConf.save(OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml")


def _current(value: Any) -> Any:
    """Optuna's current distribution for one of the deprecated kinds the plugin builds
    (IntUniform, LogUniform, ...), which warn on every trial and go away in Optuna 6."""
    if isinstance(value, IntDistribution):
        return IntDistribution(value.low, value.high, log=value.log, step=value.step)
    if isinstance(value, FloatDistribution):
        return FloatDistribution(value.low, value.high, log=value.log, step=value.step)
    return value


def _tell(study: optuna.Study, trial: optuna.Trial, state: TrialState, values: List[float] | None) -> None:
    try:
        study.tell(trial, state=state, values=values)
    except RuntimeError as err:
        # the grid sampler calls study.stop() once the grid is done, which Optuna only
        # allows inside optimize(); the trial is recorded by then
        if "Study.stop" not in str(err):
            raise


def _grid_values(name: str, distribution: BaseDistribution) -> list:
    """Every value of a discrete search-space entry, for the grid sampler."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution):
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    raise BadInput(f"hydra.sweeper.params.{name}", repr(distribution),
                   "the grid sampler needs a finite set of values.", "choice(...) or int(interval(a,b))")


class _Absent:
    """Sentinel for a key missing from the config."""


def _counted(study: optuna.Study) -> int:
    """Trials that count towards ``n_trials``: complete, pruned, failed by their job, and
    running (here or in another process sharing the study). Not counted, so redone: a
    trial interrupted by Ctrl-C or SIGTERM, or failed by Optuna for a stale heartbeat."""
    trials = study.get_trials(deepcopy=False)
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
               or (t.state == TrialState.FAIL and ERROR in t.user_attrs) for t in trials)


def _outcome(job: JobReturn, n_objectives: int) -> Tuple[TrialState, List[float] | None, str | None]:
    """What to tell Optuna about a finished job: state, values, and why it failed."""
    if job.status != JobStatus.COMPLETED:
        # the job's exception, kept by Hydra; reading .return_value would re-raise it
        error = job._return_value
        if isinstance(error, optuna.TrialPruned):
            return TrialState.PRUNED, None, None
        log.warning("Trial failed: %s: %s", type(error).__name__, error)
        return TrialState.FAIL, None, f"{type(error).__name__}: {error}"[:1000]
    returned = job.return_value
    try:
        values = [float(v) for v in (returned if n_objectives > 1 else [returned])]
    except (TypeError, ValueError):
        values = []
    if len(values) != n_objectives or not all(math.isfinite(v) for v in values):
        log.warning("Trial returned %r, not %d finite value(s): told as failed", returned, n_objectives)
        return TrialState.FAIL, None, f"returned {returned!r}, not {n_objectives} finite value(s)"
    return TrialState.COMPLETE, values, None
