"""Types and ranges of the composed config, checked before any MLflow run exists.

One table says what each key accepts; :func:`check_config` applies it to a job's
config and :func:`check_sweep` to every value a sweep or search will try, so a typo in
the fifth value of a sweep stops the command before the first job, with one message
naming the key, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from tssweep.errors import BadInput, check_required
from tssweep.objectives import objective_names


class Rule(NamedTuple):
    kind: type
    test: Callable[[Any], bool]
    allowed: str


def _integer(low: int, high: int | None = None) -> Rule:
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
    return Rule(int, lambda v: v >= low and (high is None or v <= high), allowed)


RULES: dict[str, Rule] = {
    "seed": _integer(0),
    "dataset.horizon": _integer(1),
    "dataset.seasonal_period": _integer(1),
    "dataset.backtest.folds": _integer(2),
    "dataset.backtest.step": _integer(1),
    "model.window_length": _integer(1),
    "model.iterations": _integer(1),
    "model.depth": _integer(1, 16),
    "model.learning_rate": Rule(float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "model.l2_leaf_reg": Rule(float, lambda v: v >= 0, "a number >= 0"),
    "model.thread_count": Rule(int, lambda v: v == -1 or v >= 1, "-1 (every core) or an integer >= 1"),
    "model.sp": _integer(1),
    "model.rsm": Rule(float, lambda v: 0 < v <= 1, "a number in (0, 1], or null (by data width)"),
    "model.border_count": _integer(1, 65535),
    "model.n_neighbors": _integer(1),
    "dataset.cv.folds": _integer(2),
    "preprocess.steps.minirocket.num_kernels": _integer(84),
    "summary.mcs_size": Rule(float, lambda v: 0 < v < 1, "a number in (0, 1), e.g. 0.1 or 0.05"),
    "summary.bootstrap_reps": _integer(100),
}
# keys that take one of a few words, and switches that take true or false
WORDS: dict[str, tuple[str, ...]] = {"tracking.log_models": ("all", "none"),
                                     "model.pooling": ("local", "global")}
SWITCHES = ("tracking.registry.enabled", "tracking.registry.single_runs")
# what a group option declares about itself for the checks (which tasks it serves, what
# it reads or makes), not a setting of the model or the preprocessing: never a param
OPTION_METADATA = frozenset({"model.tasks", "model.input", "preprocess.tasks", "preprocess.output"})
# keys whose allowed words depend on the model chosen
STRATEGIES = {
    "tssweep.model.catboost": ("recursive", "direct"),
    "sktime.forecasting.naive.NaiveForecaster": ("last", "mean", "drift"),
}


def group_choices(runtime_choices) -> dict[str, str]:
    """The option chosen in each of the project's config groups (Hydra's own left out)."""
    return {group: str(option) for group, option in runtime_choices.items()
            if "/" not in group and option is not None}


def check_job_config(cfg: DictConfig, choices: dict[str, str],
                     swept: frozenset[str] = frozenset()) -> list[str]:
    """All a job's config must pass before an MLflow run exists; returns its objectives.

    Run by each job, and by the sweep callback on the sweep's own config (``swept``
    names the groups whose values the jobs will set).
    """
    check_required(cfg)
    check_task(cfg, choices, Path(cfg.paths.root_dir) / "conf", swept)
    check_config(cfg)
    return objective_names(cfg.optimized_metric, cfg.dataset.task)


def check_single_run(cfg: DictConfig) -> None:
    """A single run's config checked as its job checks it (:func:`check_job_config`),
    before ``src/train.py`` imports the job and with it sktime, CatBoost and
    scikit-learn (about a second): a bad value is named at once. A sweep's config and
    values were checked before its parent, in its own process; its jobs are left to
    their own check."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.RUN:
        check_job_config(cfg, group_choices(hydra_cfg.runtime.choices))


def check_config(cfg: DictConfig) -> None:
    """Check every key of the table that ``cfg`` has, with interpolations resolved."""
    for key, rule in RULES.items():
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        except InterpolationResolutionError:  # e.g. ${dataset.seasonal_period} on a panel
            continue
        if value is not _ABSENT and value is not None:
            check_value(key, value, rule)
    for key, words in WORDS.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and value not in words:
            raise BadInput(key, value, "unknown choice.", ", ".join(words))
    for key in SWITCHES:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and not isinstance(value, bool):
            raise BadInput(key, value, "wrong type.", "true or false")
    _check_regressors(cfg)
    strategies = STRATEGIES.get(OmegaConf.select(cfg, "model._target_", default=""))
    strategy = OmegaConf.select(cfg, "model.strategy", default=None)
    if strategies and strategy not in strategies:
        raise BadInput("model.strategy", strategy, "unknown strategy for this model.", ", ".join(strategies))


def _check_regressors(cfg: DictConfig) -> None:
    """Exogenous regressors need a model that takes them at the periods it forecasts:
    CatBoost with global pooling (tssweep's reduction; for one series the same as
    local). sktime's local reduction would use them a period late, and the other
    models ignore them."""
    exog = OmegaConf.select(cfg, "dataset.exog_columns", default=None)
    if not exog:
        return
    if OmegaConf.select(cfg, "model._target_", default="") != "tssweep.model.catboost":
        raise BadInput("dataset.exog_columns", list(exog), "this model does not take exogenous regressors.",
                       "model=catboost model.pooling=global, or dataset.exog_columns=[]")
    if OmegaConf.select(cfg, "model.pooling", default="local") != "global":
        raise BadInput("model.pooling", OmegaConf.select(cfg, "model.pooling"),
                       "regressors known for the forecast horizon (dataset.exog_columns) enter tssweep's "
                       "reduction, at the period each forecast is for; sktime's local reduction would use "
                       "them a period late.", "global (for one series the same model as local)")


def check_value(key: str, value: Any, rule: Rule | None = None) -> None:
    """Check one value against the table (keys without a rule pass)."""
    rule = rule or RULES.get(key)
    if rule is None:
        return
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    right_kind = is_number and (rule.kind is float or isinstance(value, int))
    if not right_kind or not rule.test(value):
        raise BadInput(key, value, "out of range." if right_kind else "wrong type.", rule.allowed)


def check_sweep(overrides: list[str]) -> None:
    """Check every value of every sweep override (``a,b``, ``range``, ``choice``) and the
    bounds of every ``interval``, before the first job runs."""
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element().lstrip("+~")
        if key not in RULES or not override.is_sweep_override():
            continue
        value = override.value()
        if isinstance(value, IntervalSweep):
            values = [value.start, value.end]
        else:
            values = list(override.sweep_iterator())
        for item in values:
            check_value(key, item)


class _Absent:
    pass


_ABSENT = _Absent()


def check_task(cfg: DictConfig, choices: dict[str, str], conf_dir: Path,
               swept: frozenset[str] = frozenset()) -> None:
    """The preprocessing and the model must serve the dataset's task, and fit each other.

    Each option declares ``tasks`` in its YAML; a mismatch names the options that do
    apply, read from ``conf_dir``. Groups in ``swept`` (a sweep's config before its
    values are applied) are left to each job.
    """
    if "dataset" in swept or swept & {"preprocess", "model"}:
        return
    task = cfg.dataset.task
    dataset = choices.get("dataset", "?")
    if dataset == "csv" and task != "forecasting":
        raise BadInput("dataset.task", task, "classification from a CSV file is not supported yet.",
                       "forecasting (or a classification dataset shipped with sktime)")
    for group in ("preprocess", "model"):
        if task not in (cfg[group].get("tasks") or ["forecasting"]):
            raise BadInput(group, choices.get(group, "?"),
                           f"does not apply to dataset={dataset}, a {task} dataset.",
                           ", ".join(_options_for(conf_dir / group, task)))
    if task != "classification":
        return
    reads_series = cfg.model.get("input") == "series"
    makes_features = cfg.preprocess.get("output") == "features"
    if reads_series and makes_features:
        raise BadInput("preprocess", choices.get("preprocess", "?"),
                       f"turns the series into features, but model={choices.get('model')} "
                       "compares the series themselves.", "raw")
    if not reads_series and not makes_features and not cfg.dataset.get("equal_length", True):
        raise BadInput("preprocess", choices.get("preprocess", "?"),
                       f"dataset={dataset} has series of unequal lengths, which cannot be the "
                       "columns of one table for CatBoost.", "summary, catch22, minirocket")


def _options_for(group_dir: Path, task: str) -> list[str]:
    return sorted(path.stem for path in group_dir.glob("*.yaml")
                  if task in (OmegaConf.load(path).get("tasks") or ["forecasting"]))
