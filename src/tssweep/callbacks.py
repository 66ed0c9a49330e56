"""The Hydra callback that makes a multirun one MLflow parent run with nested children.

Registered in ``conf/hydra/default.yaml``. ``on_multirun_start`` runs once in the main
process before any job. It gives the sweep's writer process (``tssweep.tracking.writer``,
which ``src/train.py`` forked, or forked here) the store: the writer does the sweep's
MLflow work, and readies the store while this process refuses what cannot work, so nothing is left half-made: the job checks on every
value the sweep will try and, for tssweep's Optuna sweeper, the search space (parsed
by the sweeper's own parser, narrowed to the data), the directions against the metric,
and a study whose stored setup differs (``tssweep.study_identity``). Then the writer
creates the store (so parallel workers never race to create a fresh SQLite schema) and
the parent run. At the end the parent gets the ranking of its children and a verdict
on the winner, written by the writer too, while this process refits each winner for
the registry. Hydra skips ``on_multirun_end`` when a job
failed, so the same closing step is also registered with ``atexit``: the parent is
closed, with its summary, however the sweep ends.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra_plugins.tssweep_ray_launcher import ray_launcher
from omegaconf import DictConfig, OmegaConf

from tssweep import (
    checks,
    dataset,
    interrupts,
    objectives,
    overrides,
    preflight,
    redact,
    shared_study,
    report,
    study_identity,
    tracking,
)
from tssweep.tracking import dashboard, names, owners, writer

if TYPE_CHECKING:
    from tssweep import records

log = logging.getLogger(__name__)

# children on the compare-runs page the parent links to, best first
_COMPARED = 50
# the parent's tag listing the versions its winners became (name/version@alias)
REGISTERED_TAG = "tssweep.registered"
SWEEPER_TARGET = "hydra_plugins.tssweep_optuna_sweeper.sweeper.ResumableOptunaSweeper"
FILTER = "tssweep.hparams_search.drop_inapplicable"


class MlflowSweepCallback(Callback):
    """Opens the sweep's parent run at the start and summarises and closes it at the end.

    An Optuna search with a storage and a study name has one parent per study: running
    the same search again (a resume) reopens that parent, found by its ``tssweep.study``
    tag, and the new trials' children join the earlier ones under it.
    """

    def __init__(self) -> None:
        self._where: tracking.Where | None = None
        self._parent_id: str | None = None
        self._metric = ""
        self._sweep_dir = ""
        self._study: tuple[str, str] | None = None  # (storage, study name)
        self._task = "forecasting"
        self._ui = dashboard.DEFAULT_UI
        self._name = ""
        self._summary_cfg: DictConfig = OmegaConf.create({"mcs_size": 0.1, "bootstrap_reps": 1000})
        self._seed = 0
        self._swept: list[str] = []
        self._tracking_cfg: DictConfig | None = None
        self._writer: writer.Writer | None = None

    def __getstate__(self) -> dict:
        # a parallel launcher sends Hydra's callbacks to its workers: not this process's writer
        return {**self.__dict__, "_writer": None}

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # MLflow's work is the writer's (forked by src/train.py, else now): it opens the
        # store on the other core while this process checks the sweep
        self._where = tracking.where(config.tracking)
        verbose = config.hydra.verbose
        self._writer = writer.start(self._where, (
            _detached(config.hydra.hydra_logging),
            OmegaConf.to_container(verbose) if OmegaConf.is_config(verbose) else verbose))
        # Hydra turns a callback's exception into a warning and runs the sweep anyway,
        # whose jobs would then find no parent: stop the command here instead.
        try:
            self._open_parent(config)
        except CompactHydraException as err:  # a BadInput, or Hydra's own words
            self._stop_writer()
            print(err, file=sys.stderr)
            raise SystemExit(1) from None
        except Exception:
            self._stop_writer()
            traceback.print_exc()
            raise SystemExit(1) from None

    def _open_parent(self, config: DictConfig) -> None:
        task_overrides = list(config.hydra.overrides.task)
        swept_keys = _swept_keys(config, task_overrides)
        # before the parent exists: nothing is left half-made
        objective_names, directions, task_name = _refuse_bad_input(config, swept_keys)
        self._metric = objective_names[0]
        self._task = task_name
        # on their own (the writer is sent them), not as nodes of the whole config
        self._summary_cfg = _detached(config.summary)
        self._seed = int(config.seed)
        self._swept = swept_keys
        self._tracking_cfg = _detached(config.tracking)
        self._sweep_dir = os.path.abspath(str(config.hydra.sweep.dir))
        sweeper = config.hydra.sweeper
        identity: dict[str, str] = {}
        if sweeper.get("storage") and sweeper.get("study_name"):
            self._study = (str(sweeper.storage), str(sweeper.study_name))
            if directions:  # tssweep's sweeper: a resume must bring the study's own setup
                identity = study_identity.of_sweep(config, swept_keys)
                study_identity.check_study(*self._study, identity, directions)
        task_overrides = redact.redact_overrides(task_overrides)
        self._ui = dashboard.ui_url(config.tracking, self._where.uri)
        self._name = names.parent_name(
            task_overrides, dataset.display_name(config.dataset, config.hydra.runtime.choices.dataset),
            search="optuna" in str(sweeper.get("_target_", "")))
        tags = {"tssweep.overrides": " ".join(task_overrides), "optimized_metric": self._metric,
                **{f"study.{key}": value for key, value in identity.items()}}
        # processes sharing a study must create the experiment and find or create its
        # one parent one at a time
        interrupted = None
        with self._study_lock():
            try:
                made = writer.call(
                    _start_parent, self._where, self._sweep_dir, self._name, swept_keys, tags,
                    tracking.study_key(*self._study) if self._study else None, owners.this_process(),
                    str(config.paths.root_dir))
            except writer.Interrupted as stopped:  # the parent exists: closed on the way out
                made, interrupted = stopped.result, stopped
        self._parent_id, experiment_id = made
        # the jobs of this process hand their runs to the writer; local workers find the
        # parent in their environment (tssweep.tracking.find_parent)
        os.environ[tracking.PARENT_RUN_ENV] = self._parent_id
        if self._writer is not None:
            self._writer.sweep = (self._parent_id, experiment_id, tuple(swept_keys))
        atexit.register(self._close, completed=False)
        log.info("MLflow parent run %s in %s", self._parent_id, self._where.uri)
        if interrupted is not None:
            raise interrupted

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if self._close(completed=True):
            raise SystemExit(1)  # as a failed job does; Hydra would take an exception for a warning

    def _close(self, completed: bool) -> list[str]:
        """Log the summary and close the parent: FINISHED if the sweep completed, KILLED
        if Ctrl-C or SIGTERM ended it, else FAILED (a failed job ends a grid sweep, too
        many failed trials end a search, a child whose logging failed after its
        training fails the sweep at its end). Returns those children (run name: error).
        A no-op after the first call."""
        if self._parent_id is None:
            return []
        where, parent_id = self._where, self._parent_id
        self._parent_id = None
        # every run handed to the writer complete, before the summary reads them; Ctrl-C
        # meanwhile (only the first signal interrupts) closes the sweep as interrupted
        failed, interrupted_here = self._writer.flush() if self._writer is not None else ([], None)
        for failure in failed:
            log.error("A child run failed after its training, and is FAILED: %s", failure)
        completed = completed and not failed and interrupted_here is None
        status = tracking.FINISHED if completed else tracking.KILLED if interrupts.interrupted() else tracking.FAILED
        summary_md = Path(self._sweep_dir) / "summary" / "summary.md"
        with self._study_lock():
            others = shared_study.other_searches(*self._study) if self._study else 0
        # the winner is registered once, by the process that closes a completed sweep
        register = completed and not others and bool(self._tracking_cfg.registry.enabled)
        try:
            self._summarise(where, parent_id, register)
        finally:
            with self._study_lock():  # no other process asks for a trial meanwhile
                others = shared_study.other_searches(*self._study) if self._study else 0
                if others:  # another process shares the study: the last one closes the parent
                    log.info("MLflow parent run %s stays open for %d other processes still "
                             "searching this study; this process's summary: %s",
                             parent_id, others, summary_md)
                else:
                    writer.call(_finish_parent, where, parent_id, status)
                    log.info("MLflow parent run %s closed as %s: see %s", parent_id, status, summary_md)
            if os.environ.get(tracking.PARENT_RUN_ENV) == parent_id:
                del os.environ[tracking.PARENT_RUN_ENV]
            self._stop_writer()
        if interrupted_here is not None:
            raise interrupted_here
        return failed

    def _summarise(self, where: tracking.Where, parent_id: str, register: bool) -> None:
        """The parent's summary and verdict, made by the writer, and (``register``) each
        group's winner refitted on all its data and registered. The refits are made here,
        in a thread, while the writer writes the summary: this process has the training's
        modules and data at hand, and its cores are free. Ctrl-C meanwhile interrupts once
        it is all done."""
        with interrupts.held():
            winners = (writer.call(_winners, where, parent_id, self._metric, self._swept, self._tracking_cfg)
                       if register else [])
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tssweep-refit") as pool:
                refits = {winner.run_id: pool.submit(_refit, winner.config) for winner in winners
                          if winner.registered is None}
                summary = writer.call(_summary, where, parent_id, self._metric, Path(self._sweep_dir),
                                      self._study, self._task, self._ui, self._name, self._summary_cfg,
                                      self._seed, self._swept)
                finals = {run_id: refit.result() for run_id, refit in refits.items()}
            writer.call(_conclude, where, parent_id, summary, winners, finals, self._metric, self._ui,
                        self._name, Path(self._sweep_dir))

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.stop()

    def _study_lock(self) -> contextlib.AbstractContextManager:
        """The lock of the search's study (see ``tssweep.shared_study``); none for a grid sweep."""
        return shared_study.lock(*self._study) if self._study else contextlib.nullcontext()


def _detached(node: DictConfig) -> DictConfig:
    """A config node on its own, resolved: a node pickles with the whole config it is part of."""
    return OmegaConf.create(OmegaConf.to_container(node, resolve=True))


def _refuse_bad_input(config: DictConfig, swept_keys: list[str]) -> tuple[list[str], list[str], str]:
    """The job checks on the sweep's own config, and every value the sweep will try;
    returns the objectives, for tssweep's Optuna sweeper the directions it will
    optimise them in (none for other sweepers), and the jobs' task."""
    if config.hydra.launcher.get("_target_") == ray_launcher.TARGET:
        ray_launcher.check_cluster(config)
    task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    checks.check_job_config(task, checks.group_choices(config.hydra.runtime.choices), frozenset(swept_keys))
    search_params = _search_params(config)
    checks.check_sweep([*config.hydra.overrides.task,
                        *(f"{key}={value}" for key, value in search_params.items())])
    overrides.refuse_unknown_options(list(config.hydra.overrides.task),
                                     Path(config.paths.root_dir) / "conf")
    objective_names, task_name = preflight.check_sweep_jobs(config, swept_keys)
    if config.hydra.sweeper.get("_target_") != SWEEPER_TARGET:
        return objective_names, [], task_name
    _refuse_bad_search_space(config)
    direction = config.hydra.sweeper.get("direction")
    direction = OmegaConf.to_container(direction) if OmegaConf.is_config(direction) else direction
    return objective_names, objectives.search_directions(direction, objective_names), task_name


def _refuse_bad_search_space(config: DictConfig) -> None:
    """The search space parsed as tssweep's Optuna sweeper will parse it (unknown keys
    and options, malformed ranges), and narrowed as it will be, so that a space that
    cannot work stops the command before any run exists."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra_plugins.tssweep_optuna_sweeper._impl import search_entries, search_space

    from tssweep import hparams_search  # sktime: imported after the writer's fork

    sweeper = config.hydra.sweeper
    entries = search_entries(sweeper.get("params"), sweeper.get("spaces"), sweeper.get("space"),
                             list(config.hydra.overrides.task))
    distributions, _ = search_space(entries, config, GlobalHydra.instance().config_loader())
    if sweeper.get("search_space_filter") == FILTER:
        hparams_search.refuse_if_nothing_applies(config, distributions)


def _search_params(config: DictConfig) -> dict:
    """The search space of tssweep's Optuna sweeper: ``params`` and the named space it
    picks (nothing for other sweepers)."""
    sweeper = config.hydra.sweeper
    params = dict(sweeper.get("params") or {})
    spaces, space = sweeper.get("spaces") or {}, sweeper.get("space")
    if space is not None and space in spaces:
        params.update(spaces[space])
    return params


def _swept_keys(config: DictConfig, overrides: list[str]) -> list[str]:
    """Config keys that vary across the sweep: command-line sweeps and the sweeper's params."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    keys = [override.key_or_group for override in parsed if override.is_sweep_override()]
    return keys + [str(key) for key in _search_params(config) if str(key) not in keys]


def _start_parent(where: tracking.Where, sweep_dir: str, name: str, swept_keys: list[str],
                  tags: dict[str, str], study: str | None, owner: str, root_dir: str) -> tuple[str, str]:
    """Open the store and the sweep's parent (:func:`tssweep.tracking.start_parent`), in
    the writer; the parent's id and the experiment's."""
    store = tracking.open_store(where)
    parent_id = tracking.start_parent(store, sweep_dir, run_name=name, swept_keys=swept_keys,
                                      tags={**tags, **tracking.source_tags(root_dir)}, study=study, owner=owner)
    return parent_id, store.experiment_id


def _finish_parent(where: tracking.Where, parent_id: str, status: str) -> None:
    tracking.finish_parent(tracking.open_store(where), parent_id, status)


@dataclass
class _Winner:
    """A group's best child, to be registered: its job's config, or the version that
    holds it already (a resumed search whose best trial did not change)."""

    run_id: str
    run_name: str
    name: str  # the registered model's
    config: DictConfig | None
    registered: records.Registration | None


@dataclass
class _Summary:
    """What the writer made of the children (:func:`_summary`), for :func:`_conclude`."""

    made: report.ParentReport
    metrics: dict
    compare: str | None
    table: str


def _winners(where: tracking.Where, parent_id: str, metric: str, swept_keys: list[str],
             tracking_cfg: DictConfig) -> list[_Winner]:
    """The best finished child of each group (:func:`tssweep.report.winners`), with
    what registering it takes. Done in the writer, which holds the store."""
    from tssweep.tracking import registry

    store = tracking.open_store(where)
    children = {run.info.run_id: run for run in tracking.child_runs(store, parent_id)}
    frame = tracking.runs_frame(list(children.values()), metric, swept_keys)
    winners = []
    for run_id in report.winners(frame, metric):
        run = children[run_id]
        name = registry.registered_name(tracking_cfg, run.data.params.get("dataset.name", "data"))
        done = registry.already_registered(store, name, run, metric)
        winners.append(_Winner(run_id, run.info.run_name, name,
                               tracking.job_config(store, run_id) if done is None else None, done))
    return winners


def _refit(cfg: DictConfig):
    """A winner's pipeline fitted on all its labelled data (``tssweep.job.fit_final``),
    packed for the writer (a forecaster's: the writer needs no sktime to save it), or
    the error that stopped it: the ranking and the verdict stand without it."""
    from tssweep import job

    try:
        return job.fit_final(cfg).packed()
    except Exception as err:
        return err


def _summary(where: tracking.Where, parent_id: str, metric: str, sweep_dir: Path,
             study: tuple[str, str] | None, task: str, ui: str, title: str,
             summary_cfg: DictConfig, seed: int, swept_keys: list[str]) -> _Summary:
    """Hand the children, their per-point losses and fold values to the report, which
    writes the summary into ``sweep_dir``, and make the UI's views of the answer. Done in
    the writer, which holds the store."""
    store = tracking.open_store(where)
    children = tracking.child_runs(store, parent_id)
    frame = tracking.runs_frame(children, metric, swept_keys)
    finished = frame.loc[frame["status"].eq("FINISHED") & frame[metric].notna(), "run_id"].tolist()
    column = report.loss_column(metric)
    by_id = {run.info.run_id: run for run in children}
    losses = tracking.point_losses(store, [by_id[run_id] for run_id in finished], column) if column else {}
    fold_values = {run_id: tracking.fold_values(store, run_id, metric) for run_id in finished}
    made = report.write_report(frame, losses, fold_values, metric, task, sweep_dir / "summary",
                               float(summary_cfg.mcs_size), int(summary_cfg.bootstrap_reps), seed,
                               study, sweep_dir)

    higher = objectives.greater_is_better(metric)
    # the best first; a compare page of hundreds of trials would not load
    compare = (dashboard.compare_link(ui, store.experiment_id, made.best_first[:_COMPARED])
               if made.best_first else None)
    store.client.set_experiment_tag(store.experiment_id, *dashboard.table_view(parent_id, metric, higher))
    table = dashboard.table_link(ui, store.experiment_id, parent_id)
    # pruned and interrupted children are both KILLED: told apart by their tags
    metrics = {**made.metrics,
               "n_pruned": sum(tracking.PRUNED_TAG in run.data.tags for run in children),
               "n_interrupted": sum(tracking.INTERRUPTED_TAG in run.data.tags for run in children)}
    return _Summary(made, metrics, compare, table)


def _conclude(where: tracking.Where, parent_id: str, summary: _Summary, winners: list[_Winner],
              finals: dict[str, object], metric: str, ui: str, title: str, sweep_dir: Path) -> None:
    """Register each winner (``finals``: its refit, or the error that stopped it), log
    the summary on the parent with links to the answer in the UI, and print the verdict
    and the links. Done in the writer, which holds the store."""
    store = tracking.open_store(where)
    made = summary.made
    registered = _register_winners(store, parent_id, winners, finals, metric, ui, title)
    verdict = [*made.verdict, *registered.values()]
    if registered:
        made.tags[REGISTERED_TAG] = ", ".join(registered)
        with (sweep_dir / "summary" / "summary.md").open("a") as summary_md:
            summary_md.write("\n## Registered\n\n" + "\n".join(registered.values()) + "\n")
    tags = {**made.tags, dashboard.NOTE_TAG: dashboard.note(title, verdict, summary.compare, summary.table),
            dashboard.TABLE_TAG: summary.table, **({dashboard.COMPARE_TAG: summary.compare} if summary.compare else {})}
    log.info("\n%s\n  side by side:      %s\n  best first:        %s\n  (shown by `make ui`, "
             "or the tracking server)", "\n".join(line for line in verdict if line),
             summary.compare or "(no child finished)", summary.table)
    run = tracking.TrackedRun(store, parent_id)
    run.log(metrics=summary.metrics, tags=tags)
    run.log_artifacts(sweep_dir / "summary")


def _register_winners(store: tracking.Store, parent_id: str, winners: list[_Winner], finals: dict[str, object],
                      metric: str, ui: str, title: str) -> dict[str, str]:
    """Each group's winner, refitted on all its data (``finals``), registered
    (``tssweep.tracking.registry.publish``); returns, per version (``name/version@alias``),
    the verdict line that says what it became and why. A winner that could not be
    refitted or registered is reported, and the sweep still closes."""
    from tssweep.tracking import registry

    lines = {}
    for winner in winners:
        try:
            made = winner.registered
            if made is None:
                final = finals[winner.run_id]
                if isinstance(final, Exception):
                    raise final
                made = registry.publish(store, parent_id, winner.run_id, final, winner.config, winner.name,
                                        metric, f"sweep {title}")
                log.info("Registered %s", made.line())
        except Exception as err:  # the ranking and the verdict stand without it
            log.error("The winner %s (%s) was not registered: %s", winner.run_name, winner.run_id, err)
            lines[f"{winner.run_name}: not registered"] = (
                f"- **Not registered:** {winner.run_name}: {type(err).__name__}: {err}")
            continue
        lines[f"{made.name}/{made.version}@{made.alias}"] = (
            f"- **Registered:** [{made.name} version {made.version}]({ui}{made.ui_path}) "
            f"({winner.run_name}, refitted on all the data) is the **{made.alias}**: {made.reason}.")
    return lines
