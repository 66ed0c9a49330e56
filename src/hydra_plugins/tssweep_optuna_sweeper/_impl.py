"""The search loop: ask Optuna for trials, launch them as Hydra jobs, tell the outcomes.

Built on hydra-optuna-sweeper's ``OptunaSweeperImpl``: its constructor, search-space
config handling, trial configuration and result file are reused as they are, and an
app written for the official plugin runs unchanged (``storage: null`` is an in-memory
study, no app key is required). The loop is tssweep's own, to close the plugin's gaps:

- Never the same trial twice. A proposal whose parameters the study already holds
  (complete, running, pruned, waiting, or failed by its job) is discarded before it
  runs: told FAIL with the user attribute ``duplicate_of`` and not counted. A finite
  space that has been tried in full ends the search with a message. A seeded sampler
  keeps its seed on a fresh study (the same command gives the same trials) and is
  seeded anew from (seed, trials held) when it joins a study that holds trials, so a
  resumed or shared search does not replay the stream of the first process
  (optuna/optuna#3255).
- Trial 0 is the config as it stands: on a fresh study the values the config already
  has (those inside the search space) are enqueued, so a short search never ends
  worse than the defaults.
- The metric sets the direction: ``direction`` left unset follows ``optimized_metric``
  through ``tssweep.objectives``; one that contradicts it is refused.
- Hydra's range semantics: ``range(1,3)`` is 1, 2 for every sampler, floats included.
- Resumable and shared: a study that already holds trials runs only the ones missing to
  reach ``n_trials``, counting trials that run in other processes; counting, asking
  and the duplicate check happen under the study's lock (``tssweep.shared_study``).
- Failure-tolerant: a trial that raises is told FAIL and the search goes on, until
  more than ``max_failure_rate`` of this run's trials have failed (judged once 5 have
  run); the stop is one message naming the last error, no traceback.
- Prunable: each job gets its trial number as ``+optuna_trial=N``; with a storage it
  reports its running score after every fold (``tssweep.pruning``), and a pruned
  trial is told PRUNED.
- Narrowed before the first trial: ``spaces``/``space`` pick a named search space (one
  per task in tssweep's presets), and ``search_space_filter`` names a function that
  drops choices that cannot apply (tssweep's drops log transforms of series with zeros).
- Interrupt-safe: trials in flight when Ctrl-C or SIGTERM arrives are told FAIL,
  marked ``interrupted`` and redone by a resume; a launcher that fails marks them
  ``launch_failed`` instead.
- Composed once per shape: trials that choose the same config groups are copies of
  the first one's composed config with their values applied (``tssweep.composition``),
  not composed again by Hydra.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import (  # noqa: F401 (the last two re-exported)
    OptunaSweeperImpl,
    create_optuna_distribution_from_override,
    create_optuna_distribution_from_config,
    create_params_from_overrides,
)
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from tssweep import objectives, shared_study
from tssweep.bookkeeping import cheap_bookkeeping
from tssweep.composition import compose_once
from tssweep.errors import BadInput
from tssweep.redact import redact_uri

log = logging.getLogger(__name__)

# The plugin's module-level helpers stay reachable here, as they are (code written
# against hydra_optuna_sweeper._impl runs against this module); the search itself uses
# _distribution, which keeps Hydra's range semantics.
__all__ = ["ResumableSearch", "SearchStopped", "search_entries", "search_space",
           "create_optuna_distribution_from_config", "create_optuna_distribution_from_override",
           "create_params_from_overrides"]

TRIAL_OVERRIDE = "+optuna_trial"
INTERRUPTED = "interrupted"
LAUNCH_FAILED = "launch_failed"
ERROR = "error"  # a failed trial's exception: what makes a FAIL count towards n_trials
DUPLICATE_OF = "duplicate_of"  # a discarded proposal: the number of the trial it repeats
FROM_CONFIG = "from_config"  # trial 0: the config as it stands
_MIN_TRIALS_TO_JUDGE_FAILURES = 5
# proposals in a row that repeat the study before a finite space is walked for an
# untried setting, and before an infinite one is given up on
_DUPLICATES_BEFORE_FALLBACK = 10
_DUPLICATES_BEFORE_GIVING_UP = 100
_LARGEST_SPACE_TO_WALK = 100_000


class SearchStopped(CompactHydraException):
    """The search cannot go on (too many failures, nothing left to try): one message."""


class ResumableSearch(OptunaSweeperImpl):
    """``OptunaSweeperImpl`` with the guarantees listed in the module docstring.

    Takes the parent's arguments, by position or by name, plus tssweep's: ``pruner``,
    ``spaces`` and ``space`` (named search spaces, one picked), and
    ``search_space_filter`` (the dotted path of ``f(config, distributions) ->
    distributions``, called once before the first trial).
    """

    def __init__(self, sampler: Any, direction: Any, storage: Optional[Any],
                 study_name: Optional[str], n_trials: int, n_jobs: int,
                 max_failure_rate: float, search_space: Optional[DictConfig],
                 custom_search_space: Optional[str], params: Optional[DictConfig],
                 pruner: Any = None, spaces: Optional[DictConfig] = None,
                 space: Optional[str] = None, search_space_filter: Optional[str] = None) -> None:
        super().__init__(sampler, direction, storage, study_name, n_trials, n_jobs,
                         max_failure_rate, search_space, custom_search_space, params)
        self.pruner = pruner
        self.spaces = spaces
        self.space = space
        self.search_space_filter = search_space_filter
        self._joined = False  # whether this process has asked the study for a trial yet

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        """The parent's, with a launcher that composes each shape of trial once
        (``tssweep.composition``): trials that differ only in values are copies."""
        super().setup(hydra_context=compose_once(hydra_context), task_function=task_function,
                      config=config)

    # ---------------------------------------------------------------- the loop
    def sweep(self, arguments: List[str]) -> None:
        self._process_searchspace_config()
        distributions, fixed = search_space(
            search_entries(self.params, self.spaces, self.space, arguments), self.config,
            self.hydra_context.config_loader, self.search_space_distributions)
        if self.search_space_filter:
            distributions = get_method(self.search_space_filter)(self.config, distributions)
        is_grid = isinstance(self.sampler, functools.partial) and \
            self.sampler.func is optuna.samplers.GridSampler
        if is_grid:
            grid = {name: _grid_values(name, dist) for name, dist in distributions.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(values) for values in grid.values()))
        directions = objectives.search_directions(self.direction, self._optimized_metric())
        study = self._open_study(directions)
        log.info("Study %s in %s: %d of %d trials done or running; directions %s",
                 study.study_name, self._storage_shown(), _counted(study), self.n_trials,
                 ", ".join(directions))
        space_size = None if self.custom_search_space_extender else _space_size(distributions)

        try:
            with cheap_bookkeeping():  # Hydra's copies and files of each trial, made cheaply
                self._run(study, distributions, fixed, space_size, is_grid, directions)
        finally:  # other processes sharing the study learn that this one stopped
            if self.storage is not None:
                with self._lock():
                    shared_study.mark_search(study, done=True)
        self._save_results(study, directions)

    def _run(self, study: optuna.Study, distributions: Dict[str, BaseDistribution],
             fixed: Dict[str, Any], space_size: Optional[int], is_grid: bool,
             directions: Sequence[str]) -> None:
        """Ask, launch and tell, batch by batch, until the study is complete."""
        ran = failed = 0
        last_error = ""
        heartbeat = shared_study.Heartbeat(study)
        while batch := self._ask(study, distributions, fixed, space_size, is_grid):
            trials = [trial for trial, _ in batch]
            overrides = [(*job, f"{TRIAL_OVERRIDE}={trial.number}") for trial, job in batch]
            try:
                with heartbeat.beating(trials):
                    returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            except BaseException as err:  # no trial of this batch may stay RUNNING
                self._abandon(study, trials, err)
                raise
            self.job_idx += len(returns)
            for trial, job in zip(trials, returns):
                state, values, error = _outcome(job, len(directions))
                if error:
                    trial.set_user_attr(ERROR, error)
                    last_error = error
                _tell(study, trial, state, values)
                failed += state == TrialState.FAIL
            ran += len(trials)
            if ran >= min(_MIN_TRIALS_TO_JUDGE_FAILURES, self.n_trials) and \
                    failed / ran > self.max_failure_rate:
                raise SearchStopped(
                    f"Search stopped: {failed} of {ran} trials failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}. Last error: "
                    f"{last_error.rstrip('.')}. Each failed job's traceback is in its log (and, with "
                    "tssweep, on its MLflow run); fix the cause, or raise the rate, and run "
                    "the same command again to resume.")

    def _ask(self, study: optuna.Study, distributions: Dict[str, BaseDistribution],
             fixed: Dict[str, Any], space_size: Optional[int],
             is_grid: bool) -> List[Tuple[optuna.Trial, Sequence[str]]]:
        """The next batch: up to ``n_jobs`` new trials with their overrides, no more than
        ``n_trials`` still needs (counting every process's trials), none of them a setting
        the study already holds; empty when the search is complete or exhausted."""
        with self._lock(), warnings.catch_warnings():
            # the heartbeat is experimental in Optuna, and expected to be beaten by
            # optimize(); here shared_study.Heartbeat beats it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            optuna.storages.fail_stale_trials(study)  # trials of a process that died
            wanted = min(self.n_trials - _counted(study), self.n_jobs)
            if wanted <= 0:
                return []
            if not self._joined:
                self._join(study, distributions, fixed, is_grid)
            if self.storage is not None:
                shared_study.mark_search(study, done=False)
            held = _held_settings(study)
            batch: List[Tuple[optuna.Trial, Sequence[str]]] = []
            repeats = 0
            while len(batch) < wanted:
                if space_size is not None and len(held) >= space_size:
                    log.warning("Search space exhausted: all %d settings have been tried; the "
                                "search ends with %d trials (hydra.sweeper.n_trials=%d).",
                                space_size, _counted(study), self.n_trials)
                    break
                if repeats >= _DUPLICATES_BEFORE_GIVING_UP:
                    log.warning("Search ended: the sampler proposed %d settings in a row that "
                                "the study already holds; widen the search space.", repeats)
                    break
                if repeats and repeats % _DUPLICATES_BEFORE_FALLBACK == 0 and space_size is not None:
                    self._enqueue_untried(study, distributions, held)
                trial = study.ask()
                (job,) = self._configure_trials([trial], distributions, fixed)
                setting = _setting(trial.params)
                if held.get(setting, trial.number) != trial.number:  # an enqueued trial holds itself
                    trial.set_user_attr(DUPLICATE_OF, held[setting])
                    _tell(study, trial, TrialState.FAIL, None)
                    repeats += 1
                    continue
                held[setting] = trial.number
                batch.append((trial, job))
            return batch

    def _join(self, study: optuna.Study, distributions: Dict[str, BaseDistribution],
              fixed: Dict[str, Any], is_grid: bool) -> None:
        """This process's first ask: reseed a sampler joining a study that holds trials;
        enqueue the config as it stands, unless a trial of it ran, runs or waits (trial 0
        of a fresh study)."""
        self._joined = True
        trials = study.get_trials(deepcopy=False)
        if trials:
            self._reseed(study, len(trials))
        tried = any(FROM_CONFIG in t.user_attrs and (_counts(t) or t.state == TrialState.WAITING)
                    for t in trials)
        # again after an interrupted trial 0; the grid tries every setting anyway
        if not tried and not is_grid and distributions:
            current, outside = self._current_setting(distributions)
            if current and _setting(current) not in _held_settings(study):
                study.enqueue_trial(current, user_attrs={FROM_CONFIG: True})
                log.info("Trial 0 tries the config as it stands: %s%s", _show(current),
                         f" (not in the search space, so sampled: {_show(outside)})" if outside else "")

    def _reseed(self, study: optuna.Study, held: int) -> None:
        """Seed the sampler anew from its seed and the number of trials the study holds
        (Optuna's seeding: the sampler's ``seed`` argument), so this process does not
        replay the proposals of the one that started the study."""
        sampler_cfg = OmegaConf.select(self.config, "hydra.sweeper.sampler") if self.config else None
        seed = sampler_cfg.get("seed") if sampler_cfg is not None else None
        if seed is None or isinstance(self.sampler, optuna.samplers.GridSampler):
            return  # unseeded: random in every process already; the grid skips what is done
        derived = int(np.random.SeedSequence([int(seed), held]).generate_state(1)[0])
        self.sampler = instantiate(sampler_cfg, seed=derived)
        study.sampler = self.sampler
        log.info("Sampler seeded with %d, from seed %d and the %d trials the study holds",
                 derived, seed, held)

    def _current_setting(self, distributions: Dict[str, BaseDistribution]
                         ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """The config's own values of the searched keys: those inside the search space,
        and those outside it (left to the sampler)."""
        inside: Dict[str, Any] = {}
        outside: Dict[str, Any] = {}
        choices = OmegaConf.select(self.config, "hydra.runtime.choices") or {}
        task = _task_config(self.config)
        for name, distribution in distributions.items():
            key = name.lstrip("+~")
            if key in choices:
                value = choices[key]
            else:
                value = OmegaConf.select(task, key, default=_Absent, throw_on_missing=False)
                if value is _Absent or OmegaConf.is_config(value):
                    continue
            value = _in_distribution(distribution, value)
            if value is _Absent:
                outside[name] = choices.get(key, OmegaConf.select(task, key, default=None))
            else:
                inside[name] = value
        return inside, outside

    def _enqueue_untried(self, study: optuna.Study, distributions: Dict[str, BaseDistribution],
                         held: Dict[tuple, int]) -> None:
        """The sampler keeps repeating the study: queue a setting it has not tried, drawn
        at random (seeded by the trial count) from the finite space."""
        if (_space_size(distributions) or 0) > _LARGEST_SPACE_TO_WALK:
            return
        names = list(distributions)
        untried = [setting for setting in itertools.product(*(_grid_values(n, distributions[n]) for n in names))
                   if _setting(dict(zip(names, setting))) not in held]
        if untried:
            rng = np.random.default_rng(len(study.get_trials(deepcopy=False)))
            pick = dict(zip(names, untried[rng.integers(len(untried))]))
            study.enqueue_trial(pick)
            log.info("The sampler repeated settings already tried; queued an untried one: %s", _show(pick))

    def _abandon(self, study: optuna.Study, trials: List[optuna.Trial], err: BaseException) -> None:
        """Tell the trials of an interrupted or failed launch FAIL, not counted (a resume
        redoes them), marked with why."""
        running = {t.number for t in study.get_trials(deepcopy=False, states=[TrialState.RUNNING])}
        reason = INTERRUPTED if isinstance(err, KeyboardInterrupt) else LAUNCH_FAILED
        for trial in trials:
            if trial.number in running:
                trial.set_user_attr(reason, True if reason == INTERRUPTED else
                                    f"{type(err).__name__}: {err}"[:1000])
                _tell(study, trial, TrialState.FAIL, None)

    # ------------------------------------------------------------------ the study
    def _optimized_metric(self) -> Any:
        """The app's ``optimized_metric`` (a name or a list), or None if it has none."""
        value = OmegaConf.select(self.config, "optimized_metric", default=None)
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    def _lock(self):
        """The study's cross-process lock; none for an in-memory study."""
        if self.storage is None:
            return contextlib.nullcontext()
        return shared_study.lock(str(self.storage), str(self.study_name))

    def _storage_shown(self) -> str:
        return "memory (storage: null)" if self.storage is None else redact_uri(str(self.storage))

    def _open_study(self, directions: Sequence[str]) -> optuna.Study:
        """Create or load the study; an unusable storage is named in one message."""
        if self.storage is None:
            log.info("hydra.sweeper.storage is null: the study lives in memory, so this search "
                     "cannot be resumed or shared; set a storage such as sqlite:///optuna.db for that.")
            study = optuna.create_study(study_name=self.study_name, sampler=self.sampler,
                                        pruner=self.pruner, directions=list(directions))
            self._name_metrics(study, directions)
            return study
        try:
            # two processes creating a new database's schema at once collide: one at a time
            with self._lock():
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
                               "the directions the study was created with, or a new "
                               "hydra.sweeper.study_name") from err
            raise BadInput("hydra.sweeper.storage", self._storage_shown(), f"cannot be opened ({err}).",
                           "an Optuna storage URL such as sqlite:///outputs/optuna.db") from err
        except Exception as err:  # SQLAlchemy and driver errors
            raise BadInput("hydra.sweeper.storage", self._storage_shown(),
                           f"cannot be opened ({type(err).__name__}: {err}).",
                           "an Optuna storage URL such as sqlite:///outputs/optuna.db") from err
        self._name_metrics(study, directions)
        return study

    def _name_metrics(self, study: optuna.Study, directions: Sequence[str]) -> None:
        """Name the study's objectives after the app's metrics (trials.csv columns, plot axes)."""
        names = self._optimized_metric()
        names = [names] if isinstance(names, str) else names
        if names and len(names) == len(directions) and study.metric_names != list(names):
            with warnings.catch_warnings():  # experimental since Optuna 3.2, still stable
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(names))

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
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)  # no job ran: a resume had nothing to do
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")


class _Absent:
    """Sentinel for a key missing from the config, or a value outside a distribution."""


def search_entries(params: Optional[Mapping[str, Any]], spaces: Optional[Mapping[str, Any]],
                   space: Optional[str], arguments: Sequence[str]) -> List[str]:
    """The search space as override strings, in the order they apply: ``params``, then
    the entries of ``spaces[space]``, then the command line's ``arguments``."""
    named: List[str] = []
    if space is not None:
        names = list(spaces or {})
        if space not in names:
            raise BadInput("hydra.sweeper.space", space, "names no entry of hydra.sweeper.spaces.",
                           ", ".join(names) or "(spaces is empty)")
        named = [f"{key!s}={value}" for key, value in spaces[space].items()]
    return [*(f"{key!s}={value}" for key, value in (params or {}).items()), *named, *arguments]


def search_space(entries: Sequence[str], config: DictConfig, config_loader: Any,
                 base: Optional[Dict[str, BaseDistribution]] = None
                 ) -> Tuple[Dict[str, BaseDistribution], Dict[str, Any]]:
    """Parse the search space entry by entry, so a bad one is named in the message; a
    later entry for a key replaces an earlier one. Returns the distributions (after
    ``base``, the deprecated ``search_space`` config's) and the fixed values; a Hydra
    range keeps its meaning (``range(1,3)`` is 1, 2).

    The sweep callback runs it too, before any run exists, so a bad search space stops
    the command with nothing made.
    """
    parser = OverridesParser.create()
    distributions = {name: _current(dist) for name, dist in (base or {}).items()}
    fixed: Dict[str, Any] = {}
    for entry in entries:
        key, _, text = entry.partition("=")
        try:
            (override,) = parser.parse_overrides([entry])
            value = _distribution(override)
        except BadInput:
            raise
        except Exception as err:  # Hydra's grammar or Optuna's range checks
            raise BadInput(f"hydra.sweeper.params.{key}", text,
                           f"is not a valid search space ({err}).",
                           "choice(a,b,...), range(start,stop,step), interval(low,high), "
                           "tag(log, interval(low,high)), int(interval(low,high))") from err
        name = override.get_key_element()
        _check_key(name, value, text, config, config_loader)
        distributions.pop(name, None)
        fixed.pop(name, None)
        if isinstance(value, BaseDistribution):
            distributions[name] = value
        else:
            fixed[name] = value
    return distributions, fixed


def _check_key(key: str, value: Any, text: str, config: DictConfig, config_loader: Any) -> None:
    """The key must be a config key or a config group, and choices of a group real options."""
    if key.startswith(("+", "~")) or key.startswith("hydra."):
        return
    options = config_loader.get_group_options(key)
    if options:
        choices = value.choices if isinstance(value, CategoricalDistribution) else [value]
        unknown = [c for c in choices if str(c) not in options]
        if unknown:
            raise BadInput(f"hydra.sweeper.params.{key}", unknown[0],
                           f"is not an option of the config group {key!r}.", ", ".join(options))
        return
    if OmegaConf.select(_task_config(config), key, default=_Absent) is _Absent:
        raise BadInput(f"hydra.sweeper.params.{key}", text,
                       "names no key of the composed config (check the spelling with "
                       "`python src/train.py --cfg job`).",
                       "a config key such as model.depth, or a config group such as preprocess")


def _task_config(config: DictConfig) -> DictConfig:
    """The app's config without the ``hydra`` node."""
    return OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])


def _distribution(override: Override) -> Any:
    """The Optuna distribution of one search-space entry (or its fixed value), in
    Optuna's current classes, with a Hydra range's stop excluded as Hydra excludes it."""
    if override.is_range_sweep() and not override.value().shuffle:
        values = list(override.sweep_iterator())  # what Hydra's own sweep tries: stop excluded
        if not values:
            raise BadInput(f"hydra.sweeper.params.{override.get_key_element()}",
                           override.get_value_element_as_str(), "is an empty range.",
                           "range(start, stop, step) with start < stop for a positive step")
        step = override.value().step
        if all(isinstance(v, int) for v in values) and isinstance(step, int):
            return IntDistribution(values[0], values[-1], step=step)
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(step))
    with warnings.catch_warnings():
        # the plugin builds Optuna's pre-3.0 distributions: converted below
        warnings.simplefilter("ignore", FutureWarning)
        return _current(create_optuna_distribution_from_override(override))


def _current(value: Any) -> Any:
    """Optuna's current distribution for one of the deprecated kinds the plugin builds
    (IntUniform, LogUniform, ...), which warn on every trial and go away in Optuna 6."""
    if isinstance(value, IntDistribution):
        return IntDistribution(value.low, value.high, log=value.log, step=value.step)
    if isinstance(value, FloatDistribution):
        return FloatDistribution(value.low, value.high, log=value.log, step=value.step)
    return value


def _grid_values(name: str, distribution: BaseDistribution) -> list:
    """Every value of a discrete search-space entry, for the grid sampler."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution):
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        count = int(round((distribution.high - distribution.low) / distribution.step)) + 1
        return [distribution.low + i * distribution.step for i in range(count)]
    raise BadInput(f"hydra.sweeper.params.{name}", repr(distribution),
                   "the grid sampler needs a finite set of values.",
                   "choice(...), range(start, stop, step) or int(interval(a,b))")


def _space_size(distributions: Dict[str, BaseDistribution]) -> Optional[int]:
    """How many settings a finite space holds; None for a space with a continuous entry."""
    if any(isinstance(d, FloatDistribution) and d.step is None for d in distributions.values()):
        return None
    return math.prod(len(_grid_values(name, d)) for name, d in distributions.items())


def _in_distribution(distribution: BaseDistribution, value: Any) -> Any:
    """``value`` as the distribution holds it, or ``_Absent`` if it lies outside."""
    if isinstance(distribution, IntDistribution) and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(distribution, FloatDistribution) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(distribution, (IntDistribution, FloatDistribution)) and \
            (isinstance(value, bool) or not isinstance(value, (int, float))):
        return _Absent
    try:
        contained = distribution._contains(distribution.to_internal_repr(value))
    except (ValueError, TypeError):
        return _Absent
    return value if contained else _Absent


def _setting(params: Dict[str, Any]) -> tuple:
    """A hashable form of a trial's parameters, to find repeats."""
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


def _held_settings(study: optuna.Study) -> Dict[tuple, int]:
    """The settings the study holds, each with the number of its first trial: complete,
    running, pruned, waiting (enqueued) and failed by their job. Interrupted, stale
    and discarded trials hold nothing: a resume may try their settings again."""
    held: Dict[tuple, int] = {}
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            params = trial.system_attrs.get("fixed_params", {})
        elif _counts(trial):
            params = trial.params
        else:
            continue
        held.setdefault(_setting(params), trial.number)
    return held


def _counts(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards ``n_trials``: complete, pruned, failed by its job,
    or running (here or in another process sharing the study). Not counted, so redone:
    a trial interrupted, failed by its launcher or by Optuna for a stale heartbeat, and
    a discarded repeat."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) or \
        (trial.state == TrialState.FAIL and ERROR in trial.user_attrs)


def _counted(study: optuna.Study) -> int:
    return sum(_counts(trial) for trial in study.get_trials(deepcopy=False))


def _tell(study: optuna.Study, trial: optuna.Trial, state: TrialState, values: List[float] | None) -> None:
    try:
        study.tell(trial, state=state, values=values)
    except RuntimeError as err:
        # the grid sampler calls study.stop() once the grid is done, which Optuna only
        # allows inside optimize(); the trial is recorded by then
        if "Study.stop" not in str(err):
            raise


def _show(params: Dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items())


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
