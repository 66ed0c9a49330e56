"""What must hold before any run exists: every job composes, and its data fit it.

A mistake that can be found before training (a typo in the fifth value of a sweep, a
missing CSV file, a column, timestamps, a series too short for the backtest) stops the
command with one message and leaves nothing in the store. :func:`load_data` and
:func:`check_fits` are what a job runs before it opens its run; the sweep callback
runs :func:`check_sweep_jobs` before it opens the parent: each distinct job config of
the sweep composed and checked, each distinct dataset loaded and checked once. What only
one combination cannot take (the log of a series with zeros) still fails that child
alone, as the run that records it.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from tssweep import checks, composition, dataset, overrides
from tssweep.bookkeeping import to_yaml
from tssweep.errors import BadInput

# Hydra's basic sweeper, and tssweep's (the default), which composes each job once
# because this module has composed and checked them all before the sweep starts
GRID_SWEEPERS = ("hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                 "hydra_plugins.tssweep_grid_sweeper.sweeper.GridSweeper")


def load_data(cfg: DictConfig):
    """The job's data: a series (forecasting) or the official split (classification)."""
    if cfg.dataset.task == "classification":
        return dataset.load_panel(cfg.dataset)
    return dataset.load_series(cfg.dataset)


def check_fits(cfg: DictConfig, data, window: bool = True) -> None:
    """The data hold the evaluation and the model: the backtest folds and the reduction
    window (unless ``window`` is False: a search sets it) fit the series, or each
    cross-validation fold gets a series of every class."""
    from tssweep import forecast_evaluation, model

    if cfg.dataset.task == "classification":
        from tssweep.classification_evaluation import check_folds

        check_folds(data[1], int(cfg.dataset.cv.folds))
        return
    if dataset.is_panel(data):  # each series, named when too short
        forecast_evaluation.check_panel(data, cfg.dataset)
    else:
        forecast_evaluation.make_splitter(len(data), cfg.dataset)
    if window:  # a panel's window must fit its shortest series
        points = forecast_evaluation.first_training_points(dataset.shortest_length(data), cfg.dataset)
        model.check_window(cfg.model, points, int(cfg.dataset.horizon))


def check_sweep_jobs(config: DictConfig, swept_keys: list[str]) -> tuple[list[str], str]:
    """Compose and check the jobs of a sweep, and load and check each of its datasets;
    returns what the jobs optimise and their task, which must be the same for all (a
    sweep over datasets takes them from its jobs, not from the default dataset).

    ``config`` is the sweep's config. With Hydra's basic sweeper, each distinct job is
    composed as the sweeper will compose it; values of keys that change neither the
    config's shape nor the data (``seed``, ``model.depth``, ...) are checked one by one
    by :func:`tssweep.checks.check_sweep` instead, so ``seed=range(0,200)`` composes
    one job, not 200. Other sweepers (Optuna) check their search space themselves;
    here their base config is checked, but for what the search sets (``swept_keys``).
    """
    from hydra.core.global_hydra import GlobalHydra

    # the sweeper's launcher composes through the same loader, and reuses what it composed
    loader = composition.shared(GlobalHydra.instance().config_loader())
    jobs = _distinct_jobs(config) if config.hydra.sweeper.get("_target_") in GRID_SWEEPERS else [None]
    loaded: dict[str, object] = {}
    scored_on: dict[tuple, str] = {}  # (task, objectives) -> the first job of it
    for job_overrides in jobs:
        job_cfg = config if job_overrides is None else _compose(loader, config, job_overrides)
        task_cfg = OmegaConf.masked_copy(job_cfg, [key for key in job_cfg if key != "hydra"])
        searched = frozenset(swept_keys) if job_overrides is None else frozenset()
        try:
            objective_names = checks.check_job_config(
                task_cfg, checks.group_choices(job_cfg.hydra.runtime.choices), searched)
            scored_on.setdefault((str(task_cfg.dataset.task), tuple(objective_names)),
                                 _swept(job_overrides, config) if job_overrides else "")
            overrides.check_arguments(task_cfg, job_overrides or list(config.hydra.overrides.task))
            if any(key == "dataset" or key.startswith("dataset.") for key in searched):
                continue  # each trial checks the data it draws
            key = to_yaml(task_cfg.dataset, resolve=True)
            if key not in loaded:
                loaded[key] = load_data(task_cfg)
            check_fits(task_cfg, loaded[key],
                       window=not searched & {"model", "model.window_length", "model.strategy"})
        except BadInput as err:
            if len(jobs) == 1:
                raise
            raise err.within(f"in the sweep's job {_swept(job_overrides, config)}") from None
    if len(scored_on) > 1:
        shown = "; ".join(f"{job}: {task}, {', '.join(names)}" for (task, names), job in scored_on.items())
        raise BadInput("optimized_metric", config.optimized_metric if "optimized_metric" in config else None,
                       f"the sweep's jobs are scored on different metrics ({shown}), so they "
                       "cannot be ranked together.", "one task per sweep: sweep forecasting and "
                       "classification datasets separately")
    (task, objective_names), = scored_on
    return list(objective_names), task


def _compose(loader, config: DictConfig, job_overrides: list[str]) -> DictConfig:
    def compose(chosen: list[str]) -> DictConfig:
        return loader.load_sweep_config(master_config=config, sweep_overrides=chosen)

    try:
        return compose(job_overrides)
    except Exception as err:
        explained = overrides.explain(err, job_overrides, compose)
        if explained is not None:
            raise explained from None
        raise


def _distinct_jobs(config: DictConfig) -> list[list[str]]:
    """The jobs of a basic sweep, as its sweeper splits them, with the value-only keys
    held at their first value."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
    try:
        (jobs,) = BasicSweeper.split_arguments(parsed, None)
    except Exception as err:  # a sweep the basic sweeper cannot run (an interval): its words
        raise BadInput("-m", " ".join(config.hydra.overrides.task), str(err)) from None
    if not jobs:  # a swept key without values: range(0,0)
        empty = next(o for o in parsed if o.is_sweep_override() and not list(o.sweep_string_iterator()))
        raise BadInput(empty.get_key_element(), empty.input_line.split("=", 1)[1],
                       "sweeps no values, so the sweep has no jobs.",
                       "at least one value for every swept key, e.g. seed=range(0,3)")
    distinct: dict[tuple[str, ...], list[str]] = {}
    for job in jobs:  # each key holds the same position in every job
        shown = tuple(jobs[0][i] if _value_only(o) else o for i, o in enumerate(job))
        distinct.setdefault(shown, list(shown))
    return list(distinct.values())


def _swept(job_overrides: list[str], config: DictConfig) -> str:
    """The job's values of the keys the sweep varies: ``dataset=lynx dataset.horizon=40``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    swept = {o.get_key_element() for o in parsed if o.is_sweep_override()}
    return " ".join(o for o in job_overrides if o.split("=", 1)[0] in swept) or " ".join(job_overrides)


def _value_only(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return key in checks.RULES and not key.startswith("dataset.") and key != "model.window_length"
