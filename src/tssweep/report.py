"""The sweep's report on its parent run: which variant won, by how much, is it real.

What the tracking side fetched goes in: a frame of the children (their names, status,
scores, and what they were scored on) and each child's per-point losses (a backtest
point, or a train series held out by cross-validation). Files, metrics and tags for the
parent come out. Nothing here talks to MLflow.

- **Rivals share their data.** Children are compared only within a group scored on the
  same data and the same evaluation: the data fingerprint plus horizon, backtest folds
  and step, or CV folds. Two targets of one dataset, or two horizons, are two groups.
- **A set, not a pair.** Within a group, the model confidence set of Hansen, Lunde &
  Nason (2011), ``arch.bootstrap.MCS`` at size ``summary.mcs_size`` (0.1), holds the
  variants that cannot be told apart from the best, on the per-point losses of the
  optimised metric that every variant shares: a stationary block bootstrap for
  forecasting (errors of one fold's forecast are serially dependent; the mean block
  length is chosen from the losses), an i.i.d. bootstrap for classification (each
  train series is scored once). "Real" only when the best is alone in the set.
- **Across datasets.** With three or more groups and variants scored on each, the
  variants' average ranks, the Friedman test (``scipy.stats``), Nemenyi's post-hoc
  (``scikit-posthocs``) and its critical-difference diagram.
- **A search** also gets its Optuna study's report: trials, the best, plots.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tssweep.objectives import DIRECTIONS, greater_is_better
from tssweep.redact import redact_uri

log = logging.getLogger(__name__)

# what a child was scored on, as its tags and params name it (the columns the tracking
# side puts in ``children``): rivals share all of them
EVALUATION = ("data.fingerprint", "dataset.horizon", "dataset.backtest.folds",
              "dataset.backtest.step", "dataset.cv.folds")


@dataclass
class Verdict:
    """The best variant of one group against the others, on the optimised metric."""

    group: str
    best_run_id: str
    best_name: str
    best_value: float
    runner_up_name: str | None = None
    runner_up_value: float | None = None
    margin: float | None = None          # how much better the best is, in metric units
    margin_percent: float | None = None  # the margin relative to the runner-up's value
    best_set: list[str] = field(default_factory=list)  # names in the model confidence set
    best_set_ids: list[str] = field(default_factory=list)  # their run ids
    p_values: dict[str, float] = field(default_factory=dict)  # run id -> MCS p-value
    points: int = 0
    variants: int = 0
    text: str = ""


@dataclass
class ParentReport:
    """What the parent run gets: metrics, tags, and the verdict's markdown lines."""

    metrics: dict
    tags: dict
    verdict: list[str]
    best_first: list[str]  # finished children's run ids, best first
    winners: list[str] = field(default_factory=list)  # the best child's run id in each group


def write_report(children: pd.DataFrame, losses: dict[str, pd.Series], fold_values: dict[str, list[float]],
                 metric: str, task: str, out: Path, size: float = 0.1, reps: int = 1000, seed: int = 0,
                 study: tuple[str, str] | None = None, sweep_dir: Path | None = None) -> ParentReport:
    """Rank the children per group, judge each group, compare across datasets, report
    the study, and write it all into ``out``: ``summary.md``, ``children.csv``,
    ``<metric>_by_child.png``, ``critical_difference.png``, the study's files.

    ``children`` is the tracking side's frame of the children (see
    ``tssweep.tracking.runs_frame``), ``losses`` their per-point losses of ``metric``,
    ``fold_values`` their per-fold values of it.
    """
    from tssweep import plots
    from tssweep.objectives import evaluation_words

    higher = greater_is_better(metric)
    ranked = rank(group_children(children), metric, higher)
    verdicts = judge(ranked, metric, losses, size, reps, seed)
    across = across_datasets(ranked, metric) if ranked["group"].nunique() >= 3 else None
    table = with_verdicts(ranked, verdicts)
    out.mkdir(parents=True, exist_ok=True)
    table.drop(columns=[c for c in EVALUATION if c in table]).to_csv(out / "children.csv", index=False)
    (out / "summary.md").write_text(to_markdown(table, verdicts, metric, evaluation_words(task)[0], across))
    if across is not None:
        critical_difference(across, out / "critical_difference.png")
    best_first = list(ranked.loc[ranked["rank"].notna(), "run_id"])
    if best_first:
        spread = {run_id: statistics.stdev(values) if len(values) > 1 else 0.0
                  for run_id, values in fold_values.items()}
        plots.metric_bars(ranked, metric, spread, out / f"{metric}_by_child.png")
    metrics, tags = parent_metrics(verdicts, metric)
    metrics.update(n_children=len(children), n_finished=len(best_first),
                   n_failed=int((children["status"] == "FAILED").sum()))
    if across is not None:
        tags["across_datasets.best_variant"] = str(across["ranks"].index[0])
        metrics["across_datasets.best_rank"] = float(across["ranks"].iloc[0])
        if across["friedman_p"] is not None:
            metrics["across_datasets.friedman_p_value"] = across["friedman_p"]
    if study is not None:
        storage, study_name = study
        study_metrics, study_tags = write_study_report(storage, study_name, out)
        results = sweep_dir / "optimization_results.yaml" if sweep_dir else None
        if results is not None and results.is_file():
            shutil.copy(results, out / results.name)
        metrics.update(study_metrics)
        tags.update(study_tags, **{"optuna.storage": redact_uri(storage)})
    return ParentReport(metrics, tags, verdict_lines(verdicts, metric), best_first, _best_of_groups(ranked))


def winners(children: pd.DataFrame, metric: str) -> list[str]:
    """The best finished child's run id in each group, in the order the groups ran:
    the winners :func:`write_report` names (``children`` as it takes them)."""
    return _best_of_groups(rank(group_children(children), metric, greater_is_better(metric)))


def _best_of_groups(ranked: pd.DataFrame) -> list[str]:
    finished = ranked[ranked["rank"].notna()]
    return finished.loc[finished["rank"] == 1, "run_id"].tolist()


def loss_column(metric: str) -> str | None:
    """The per-point loss column of an objective (``cv_accuracy`` -> ``accuracy``);
    None for one without per-point losses (``fit_seconds``)."""
    # every objective but the seconds is a mean of per-point losses, logged under its
    # name without the cross-validation prefix
    known = metric in DIRECTIONS and not metric.endswith("_seconds")
    return metric.removeprefix("cv_") if known else None


def group_children(children: pd.DataFrame) -> pd.DataFrame:
    """``children`` with a ``group`` column: the dataset's name, and what else tells its
    group apart when two groups share a name (``uschange (data 3f2a1c)``)."""
    keys = [column for column in EVALUATION if column in children]
    identity = children[keys].astype(str).agg("|".join, axis=1) if keys else pd.Series("", index=children.index)
    labels = {}
    for name, members in identity.groupby(children["dataset"], sort=False):
        distinct = list(dict.fromkeys(members))
        for key in distinct:
            labels[(name, key)] = name if len(distinct) == 1 else f"{name} ({_difference(key, distinct, keys)})"
    return children.assign(group=[labels[(name, key)] for name, key in zip(children["dataset"], identity)])


def rank(children: pd.DataFrame, metric: str, greater_is_better: bool) -> pd.DataFrame:
    """Finished children ranked best first within each group; failed ones last, unranked.

    Groups keep the order in which the sweep ran them. ``children`` needs the columns
    ``group``, ``status`` and ``metric``.
    """
    finished = children[children["status"].eq("FINISHED") & children[metric].notna()]
    ordered = finished.sort_values(metric, ascending=not greater_is_better, kind="stable")
    ranked = [members.assign(rank=range(1, len(members) + 1))
              for members in (ordered[ordered["group"] == name] for name in children["group"].unique())
              if len(members)]
    unranked = children.drop(finished.index).assign(rank=pd.NA)
    frame = pd.concat([*ranked, unranked]) if ranked else unranked
    return frame.reset_index(drop=True)[["rank", *children.columns]]


def judge(ranked: pd.DataFrame, metric: str, losses: dict[str, pd.Series], size: float = 0.1,
          reps: int = 1000, seed: int = 0) -> list[Verdict]:
    """A verdict per group: the best, its margin over the runner-up, and the model
    confidence set of the variants that cannot be told apart from it.

    ``losses`` maps a run id to its per-point losses of ``metric`` (lower is better),
    indexed by point. Backtest points are bootstrapped in blocks (a forecast's errors
    hang together) whose mean length is Politis and White's choice for the loss
    differences (``arch.bootstrap.optimal_block_length``); cross-validated series one
    by one.
    """
    higher = greater_is_better(metric)
    finished = ranked[ranked["rank"].notna()]
    return [_judge(members, metric, higher, losses, size, reps, _block(members), seed)
            for _, members in finished.groupby("group", sort=False)]


def _block(members: pd.DataFrame) -> int | None:
    """1 (i.i.d.) for series held out by cross-validation, None (chosen from the
    losses) for backtest points, which carry a horizon."""
    horizon = pd.to_numeric(members.get("dataset.horizon", pd.Series(dtype=float)), errors="coerce")
    return None if len(horizon) and horizon.notna().iloc[0] else 1


def _judge(members: pd.DataFrame, metric: str, higher: bool, losses: dict[str, pd.Series],
           size: float, reps: int, block_size: int | None, seed: int) -> Verdict:
    # within a group, what tells the variants apart (``catch22``, not ``gunpoint · catch22``)
    labels = (members["variant"] if "variant" in members and members["variant"].is_unique
              and members["variant"].astype(bool).all() else members["run_name"])
    members = members.assign(run_name=labels.to_numpy())
    best = members.iloc[0]
    verdict = Verdict(group=str(best["group"]), best_run_id=best["run_id"], best_name=best["run_name"],
                      best_value=float(best[metric]))
    if len(members) == 1:
        verdict.text = "Only one variant finished: nothing to compare against."
        return verdict
    second = members.iloc[1]
    sign = 1.0 if higher else -1.0
    verdict.runner_up_name, verdict.runner_up_value = second["run_name"], float(second[metric])
    verdict.margin = sign * (verdict.best_value - verdict.runner_up_value)
    if verdict.runner_up_value:
        verdict.margin_percent = 100 * verdict.margin / abs(verdict.runner_up_value)
    matrix = _loss_matrix(members, losses)
    if matrix is None:
        verdict.text = ("The variants do not share per-point losses on the same points, so the "
                        "difference cannot be tested.")
        return verdict
    in_set, p_values = _confidence_set(matrix, size, reps, block_size, seed)
    names = dict(zip(members["run_id"], members["run_name"]))
    verdict.points, verdict.p_values, verdict.variants = len(matrix), p_values, len(members)
    verdict.best_set_ids = [run_id for run_id in members["run_id"] if run_id in in_set]
    verdict.best_set = [names[run_id] for run_id in verdict.best_set_ids]
    verdict.text = _verdict_text(verdict, size, best["run_id"] in in_set, reps)
    return verdict


def _confidence_set(matrix: pd.DataFrame, size: float, reps: int, block_size: int | None,
                    seed: int) -> tuple[list[str], dict[str, float]]:
    """The columns of ``matrix`` in the model confidence set, and each one's p-value.

    The MCS divides by the spread of each pair's loss differences, which is zero for
    variants with identical losses (trials that drew the same model) or losses a
    constant apart. Identical columns are tested once, as one variant, and share its
    result; of two columns a constant apart, the worse is out with p = 0.
    """
    from arch.bootstrap import MCS, optimal_block_length

    keys = matrix.T.apply(lambda column: column.to_numpy().tobytes(), axis=1)
    distinct = matrix.loc[:, ~keys.duplicated().to_numpy()]
    same_as = {column: distinct.columns[keys[distinct.columns].tolist().index(keys[column])]
               for column in matrix.columns}
    dominated = {b if distinct[b].mean() > distinct[a].mean() else a
                 for i, a in enumerate(distinct.columns) for b in distinct.columns[i + 1:]
                 if (distinct[a] - distinct[b]).std() == 0}
    tested = distinct.drop(columns=list(dominated))
    if tested.shape[1] == 1:
        kept, p_of = list(tested.columns), {tested.columns[0]: 1.0}
    else:
        if block_size is None:
            differences = tested.sub(tested.mean(axis=1), axis=0)
            chosen = optimal_block_length(differences)["stationary"].mean()
            block_size = int(min(max(1, math.ceil(chosen)), max(1, len(tested) // 4)))
        # Tmax, the elimination rule of Hansen, Lunde & Nason that kept the false "Real"
        # rate under the size in tests/test_report.py's null sweeps (the R rule did not)
        mcs = MCS(tested, size=size, reps=reps, block_size=block_size, method="max",
                  bootstrap="stationary", seed=seed)
        mcs.compute()
        kept, p_of = list(mcs.included), {str(c): float(p) for c, p in mcs.pvalues["Pvalue"].items()}
    p_of.update({column: 0.0 for column in dominated})
    return ([column for column in matrix.columns if same_as[column] in kept],
            {column: p_of[same_as[column]] for column in matrix.columns})


def _loss_matrix(members: pd.DataFrame, losses: dict[str, pd.Series]) -> pd.DataFrame | None:
    """One column of per-point losses per variant, on the points all of them share."""
    columns = {run_id: losses[run_id] for run_id in members["run_id"] if run_id in losses}
    if len(columns) < 2 or len(columns) < len(members):
        return None
    matrix = pd.DataFrame(columns).dropna()
    return matrix if len(matrix) >= 2 and len(matrix) == max(len(s) for s in columns.values()) else None


def _verdict_text(v: Verdict, size: float, best_in_set: bool, reps: int) -> str:
    confidence = f"{(1 - size) * 100:g}% model confidence set"
    others = [name for name in v.best_set if name != v.best_name]
    if best_in_set and not others:
        highest = max(p for run_id, p in v.p_values.items() if run_id != v.best_run_id)
        # a bootstrap p-value of 0 means below one in ``reps``
        bound = f"≤ {highest:.3g}" if highest > 0 else f"< {1 / reps:g}"
        return (f"Real: {v.best_name} is alone in the {confidence} over {v.points} points; every "
                f"other variant is worse (MCS p {bound}).")
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    if not best_in_set:  # the set is about expected losses; the ranking about means
        return (f"Not distinguishable: the {confidence} over {v.points} points holds {shown}, "
                f"but not {v.best_name}, whose mean was best by a margin that does not hold up.")
    return (f"Not distinguishable: {v.best_name} ties with {shown} (the {confidence} over "
            f"{v.points} points holds {len(v.best_set)} of the {v.variants} variants); treat them as equal.")


def across_datasets(ranked: pd.DataFrame, metric: str, alpha: float = 0.05) -> dict | None:
    """Average ranks of the variants scored on every group, the Friedman test (three or
    more variants) and the Nemenyi post-hoc; None below three groups or two variants.

    Returns ``ranks`` (variant -> average rank, 1 best), ``friedman_p``, ``nemenyi``
    (pairwise p-values) and ``scores`` (groups x variants).
    """
    import scikit_posthocs
    from scipy import stats

    finished = ranked[ranked["rank"].notna()]
    scores = finished.pivot_table(index="group", columns="variant", values=metric, aggfunc="first")
    scores = scores.dropna(axis=1)  # only variants every group scored
    if len(scores) < 3 or scores.shape[1] < 2:
        return None
    higher = greater_is_better(metric)
    ranks = scores.rank(axis=1, ascending=not higher).mean().sort_values()
    result = {"ranks": ranks, "scores": scores, "friedman_p": None}
    if scores.shape[1] >= 3:  # scipy's Friedman test needs three or more variants
        result["friedman_p"] = float(stats.friedmanchisquare(*(scores[c] for c in scores)).pvalue)
    # Nemenyi on the losses' ranks: negate a score where higher is better
    result["nemenyi"] = scikit_posthocs.posthoc_nemenyi_friedman((-scores if higher else scores).to_numpy())
    result["nemenyi"].index = result["nemenyi"].columns = scores.columns
    return result


def critical_difference(across: dict, path: Path) -> None:
    """Draw the critical-difference diagram of :func:`across_datasets` (``scikit_posthocs``)."""
    import scikit_posthocs
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 2.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    scikit_posthocs.critical_difference_diagram(across["ranks"], across["nemenyi"], ax=axes)
    axes.set_title("Average rank across datasets (1 best); joined: not told apart (Nemenyi, p ≥ 0.05)",
                   fontsize=9, pad=20)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def to_markdown(ranked: pd.DataFrame, verdicts: list[Verdict], metric: str,
                evaluation: str = "backtest", across: dict | None = None) -> str:
    """The parent run's ``summary.md``: the verdict per group, across datasets, the table.

    ``evaluation`` names what ``metric`` is a mean over: ``backtest`` folds
    (forecasting) or ``cross-validation`` folds (classification).
    """
    lines = [f"# Sweep summary, ranked by {evaluation} `{metric}`", "", *verdict_lines(verdicts, metric)]
    if across is not None:
        lines += _across_lines(across)
    lines.append(_table(ranked))
    return "\n".join(lines) + "\n"


def verdict_lines(verdicts: list[Verdict], metric: str) -> list[str]:
    """The verdict in markdown, per group: the best, the margin, whether it is real."""
    if not verdicts:
        return ["No child run finished.", ""]
    lines = []
    for v in verdicts:
        if len(verdicts) > 1:
            lines += [f"## {v.group}", ""]
        lines.append(f"- **Best:** {v.best_name} with {metric} = {v.best_value:.4g}")
        if v.margin is not None:
            percent = f" ({v.margin_percent:.1f}%)" if v.margin_percent is not None else ""
            lines.append(f"- **Margin:** {v.margin:.4g}{percent} better than "
                         f"{v.runner_up_name} ({v.runner_up_value:.4g})")
        lines += [f"- **Is it real?** {v.text}", ""]
    return lines


def _across_lines(across: dict) -> list[str]:
    scores = across["scores"]
    lines = ["## Across datasets", "",
             f"Average rank of each variant over {len(scores)} datasets (1 is best):", ""]
    lines += [f"{i}. {variant}: {rank:.2f}" for i, (variant, rank) in enumerate(across["ranks"].items(), 1)]
    if across["friedman_p"] is None:
        lines += ["", "With two variants there is no Friedman test; `critical_difference.png` "
                  "joins them if Nemenyi's test cannot tell them apart."]
    else:
        verdict = ("the variants differ" if across["friedman_p"] < 0.05
                   else "no variant stands out across these datasets")
        lines += ["", f"Friedman test: p = {across['friedman_p']:.3g}, {verdict}. "
                  "`critical_difference.png` joins the variants Nemenyi's test cannot tell apart."]
    return [*lines, ""]


def with_verdicts(ranked: pd.DataFrame, verdicts: list[Verdict]) -> pd.DataFrame:
    """The ranked table with each child's MCS p-value and whether it is in its group's
    model confidence set (``in_best_set``)."""
    p_values = {run_id: p for v in verdicts for run_id, p in v.p_values.items()}
    in_set = {run_id for v in verdicts for run_id in v.best_set_ids}
    tested = set(p_values)
    return ranked.assign(
        mcs_p_value=ranked["run_id"].map(p_values),
        in_best_set=[run_id in in_set if run_id in tested else pd.NA for run_id in ranked["run_id"]])


def parent_metrics(verdicts: list[Verdict], metric: str) -> tuple[dict, dict]:
    """Metrics and tags for the parent: one set per group, prefixed by the group's name
    when there are several (``airline.best_mase``)."""
    metrics, tags = {}, {}
    for v in verdicts:
        # MLflow keys take letters, digits, _ - . : / and spaces: "airline (horizon 6)"
        # becomes "airline horizon 6"
        prefix = re.sub(r"[^\w\-.:/ ]", "", v.group).strip() + "." if len(verdicts) > 1 else ""
        values = {f"best_{metric}": v.best_value, "best_margin": v.margin,
                  "best_margin_percent": v.margin_percent,
                  "n_in_best_set": len(v.best_set) if v.best_set else None}
        metrics.update({prefix + key: value for key, value in values.items() if value is not None})
        tags.update({prefix + "best_run_id": v.best_run_id, prefix + "best_run_name": v.best_name,
                     prefix + "verdict": v.text})
    return metrics, tags


def _difference(key: str, distinct: list[str], columns: list[str]) -> str:
    """What sets ``key`` apart from the other groups of the same dataset."""
    values = key.split("|")
    others = [other.split("|") for other in distinct if other != key]
    parts = []
    for i, column in enumerate(columns):
        if any(other[i] != values[i] for other in others):
            parts.append(f"data {values[i][:6]}" if column == "data.fingerprint"
                         else f"{column.removeprefix('dataset.')} {values[i]}")
    return ", ".join(parts)


def _table(frame: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    # run ids and names cut to the UI's column make way for what tells the variants apart
    shown = frame.drop(columns=[c for c in (*EVALUATION, "run_id") if c in frame])
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def write_study_report(storage: str, study_name: str, folder: Path) -> tuple[dict, dict]:
    """What an Optuna search leaves on its parent: ``trials.csv`` (every trial with
    state, values, params and duration), ``optimization_history.png``,
    ``param_importances.png`` (fANOVA, once two trials completed) and, for a
    multi-objective search, ``pareto_front.png`` and ``pareto_front.csv``; returns
    (metrics, tags) for the parent. Read from the storage, so after a resume it
    describes the whole study; nothing when the study does not exist.
    """
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # the search stopped before it created the study
        return {}, {}
    except Exception as err:  # an unusable storage was reported when the search began
        log.warning("No study report: %s cannot be read (%s)", redact_uri(storage), type(err).__name__)
        return {}, {}
    folder.mkdir(parents=True, exist_ok=True)
    study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
    counts = {state: len(study.get_trials(deepcopy=False, states=[state]))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    metrics = {"optuna.trials_complete": counts[TrialState.COMPLETE],
               "optuna.trials_pruned": counts[TrialState.PRUNED],
               "optuna.trials_failed": counts[TrialState.FAIL]}
    tags: dict = {"optuna.study_name": study_name}
    if not counts[TrialState.COMPLETE]:
        return metrics, tags

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if len(study.directions) > 1:
            front = study.best_trials
            tags["optuna.pareto_trials"] = " ".join(str(t.number) for t in front)
            metrics["optuna.pareto_size"] = len(front)
            study.trials_dataframe().query("number in @numbers", local_dict={
                "numbers": [t.number for t in front]}).to_csv(folder / "pareto_front.csv", index=False)
            _save(optuna.visualization.matplotlib.plot_pareto_front(study), folder / "pareto_front.png")
        else:
            best = study.best_trial
            metrics["optuna.best_value"] = best.value
            tags["optuna.best_trial"] = str(best.number)
            tags.update({f"optuna.best_params.{key}": str(value) for key, value in best.params.items()})
            _save(optuna.visualization.matplotlib.plot_optimization_history(study),
                  folder / "optimization_history.png")
            if counts[TrialState.COMPLETE] >= 2 and study.best_trial.params:
                try:
                    _save(optuna.visualization.matplotlib.plot_param_importances(study),
                          folder / "param_importances.png")
                except (ValueError, RuntimeError) as err:  # e.g. a search space of one value
                    log.warning("No hyperparameter-importance plot: %s", err)
    return metrics, tags


def _save(axes, path: Path) -> None:
    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    figure.set_size_inches(9, 5)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    import matplotlib.pyplot as plt  # optuna draws with pyplot; free its figure

    plt.close(figure)
