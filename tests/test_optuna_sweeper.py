"""tssweep's Optuna sweeper as a Hydra plugin: hydra-optuna-sweeper's contract kept for
any app (no tssweep key needed, ``storage: null``, Hydra's range semantics, a job's
error on stderr, creatable under ``-W error``), and its own guarantees, on a small app
of our own run as a real multirun."""

import subprocess
import sys

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from hydra_plugins.tssweep_optuna_sweeper import _impl
from hydra_plugins.tssweep_optuna_sweeper._impl import ResumableSearch
from hydra_plugins.tssweep_optuna_sweeper.sweeper import ResumableOptunaSweeper
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

APP = """
import hydra


@hydra.main(version_base="1.3", config_path=".", config_name="app")
def bowl(cfg):
    if cfg.fail:
        raise RuntimeError("this job fails on purpose")
    return (cfg.x - 1) ** 2 + (cfg.y - 0.5) ** 2 + {"a": 0.0, "b": 1.0, "c": 2.0}[cfg.z]


if __name__ == "__main__":
    bowl()
"""
CONF = """
defaults:
  - _self_
  - override hydra/sweeper: tssweep_optuna

x: 2
y: 0.5
z: b
fail: false
hydra:
  sweeper:
    storage: null
    n_trials: 8
    params:
      x: range(0, 4)
      y: interval(-1.0, 1.0)
      z: choice(a, b, c)
"""


@pytest.fixture
def app(tmp_path):
    """Run the app's multirun under ``-W error`` in ``tmp_path``; return the process."""
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "app.yaml").write_text(CONF)

    def run(*overrides: str):
        return subprocess.run([sys.executable, "-W", "error", "app.py", "-m",
                               f"hydra.sweep.dir={tmp_path}/sweep", *overrides],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return run


def test_hydra_finds_it_and_its_classes_take_their_parents_arguments():
    assert "ResumableOptunaSweeper" in [plugin.__name__ for plugin in Plugins.instance().discover(Sweeper)]
    arguments = dict(sampler=optuna.samplers.RandomSampler(), direction="minimize", storage=None,
                     study_name="s", n_trials=1, n_jobs=1, max_failure_rate=0.0, search_space=None,
                     custom_search_space=None, params=None)
    assert isinstance(ResumableSearch(**arguments), OptunaSweeperImpl)
    assert isinstance(ResumableSearch(*arguments.values()), OptunaSweeperImpl)
    sweeper = ResumableOptunaSweeper(**arguments)
    assert isinstance(sweeper, OptunaSweeper) and isinstance(sweeper.sweeper, ResumableSearch)


def test_the_sweeper_imports_neither_mlflow_nor_pandas():
    code = ("import sys; from hydra_plugins.tssweep_optuna_sweeper import config, sweeper, _impl; "
            "print(sorted(m for m in ('mlflow', 'pandas', 'sktime', 'tssweep.tracking') if m in sys.modules))")
    process = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "[]"


@pytest.mark.parametrize("override, expected, grid", [
    ("k=range(1,3)", IntDistribution(1, 2), [1, 2]),
    ("k=range(0,10,step=3)", IntDistribution(0, 9, step=3), [0, 3, 6, 9]),
    ("k=range(-1.0,1.0,step=1)", FloatDistribution(-1.0, 0.0, step=1.0), [-1.0, 0.0]),
    ("k=range(0.5,2.0,step=0.5)", FloatDistribution(0.5, 1.5, step=0.5), [0.5, 1.0, 1.5]),
    ("k=int(interval(1,3))", IntDistribution(1, 3), [1, 2, 3]),
    ("k=choice(a,b)", CategoricalDistribution(["a", "b"]), ["a", "b"]),
])
def test_ranges_keep_hydras_meaning(override, expected, grid):
    (parsed,) = OverridesParser.create().parse_overrides([override])
    distribution = _impl._distribution(parsed)
    assert distribution == expected
    assert _impl._grid_values("k", distribution) == grid
    assert _impl._space_size({"k": distribution}) == len(grid)


def test_an_in_memory_search_needs_no_app_key_and_starts_from_the_config(app, tmp_path):
    process = app()
    assert process.returncode == 0, process.stderr[-3000:]
    assert "the study lives in memory" in process.stdout and "Trial 0 tries the config as it stands: " \
        "x=2 y=0.5 z=b" in process.stdout
    jobs = [OmegaConf.load(tmp_path / "sweep" / str(n) / ".hydra" / "overrides.yaml") for n in range(8)]
    assert list(jobs[0]) == ["x=2", "y=0.5", "z=b", "+optuna_trial=0"]
    # the config scores 2.0: the search ends no worse, minimising with no direction given
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.best_value <= 2.0
    tried = {tuple(sorted(o for o in job if not o.startswith("+optuna_trial"))) for job in jobs}
    assert len(jobs) == 8 and len(tried) == 8


def test_the_grid_walks_hydras_ranges_once(app, tmp_path):
    storage = f"sqlite:///{tmp_path}/grid.db"
    process = app("hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=100", f"hydra.sweeper.storage={storage}",
                  "hydra.sweeper.study_name=grid", "x=range(1,3)", "y=range(-1.0,1.0,step=0.5)")
    assert process.returncode == 0, process.stderr[-3000:]
    trials = optuna.load_study(study_name="grid", storage=storage).trials
    assert {(t.params["x"], t.params["y"], t.params["z"]) for t in trials} == {
        (x, y, z) for x in (1, 2) for y in (-1.0, -0.5, 0.0, 0.5) for z in "abc"}
    assert len(trials) == 24


def test_a_small_space_is_tried_once_each_then_the_search_ends(app, tmp_path):
    storage = f"sqlite:///{tmp_path}/small.db"
    process = app("hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=3", "hydra.sweeper.n_trials=20",
                  f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=small", "y=0.5",
                  "x=range(0,2)")
    assert process.returncode == 0, process.stderr[-3000:]
    assert "Search space exhausted: all 6 settings have been tried" in process.stdout
    study = optuna.load_study(study_name="small", storage=storage)
    run = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert sorted((t.params["x"], t.params["z"]) for t in run) == [(x, z) for x in (0, 1) for z in "abc"]
    repeats = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    # a random sampler repeats itself on six settings; each repeat was discarded, never run
    assert all(t.state.name == "FAIL" and t.params == study.trials[t.user_attrs["duplicate_of"]].params
               for t in repeats)
    assert len(list((tmp_path / "sweep").glob("*/.hydra"))) == 6


@pytest.mark.parametrize("rate, code", [(0.5, 1), (1.0, 0)])
def test_a_failing_job_reaches_stderr_when_it_stops_the_search(app, rate, code):
    process = app("fail=true", "hydra/sweeper/sampler=random", f"hydra.sweeper.max_failure_rate={rate}")
    assert process.returncode == code
    assert ("RuntimeError: this job fails on purpose" in process.stderr) == (code == 1)
    assert "Traceback" not in process.stderr


def test_an_explicit_direction_is_kept_for_a_metric_tssweep_does_not_know(app, tmp_path):
    storage = f"sqlite:///{tmp_path}/up.db"
    process = app("hydra.sweeper.direction=maximize", f"hydra.sweeper.storage={storage}",
                  "hydra.sweeper.study_name=up", "hydra.sweeper.n_trials=3")
    assert process.returncode == 0, process.stderr[-3000:]
    assert optuna.load_study(study_name="up", storage=storage).direction.name == "MAXIMIZE"


def test_a_failed_launch_is_not_an_interrupt_and_is_redone():
    study = optuna.create_study()
    trials = [study.ask(), study.ask()]
    search = ResumableSearch(optuna.samplers.RandomSampler(), None, None, None, 2, 2, 0.5,
                             None, None, None)
    search._abandon(study, trials, RuntimeError("the cluster went away"))
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert all(t.user_attrs == {"launch_failed": "RuntimeError: the cluster went away"} for t in study.trials)
    assert _impl._counted(study) == 0  # a resume redoes them
    search._abandon(study, [study.ask()], KeyboardInterrupt())
    assert study.trials[-1].user_attrs == {"interrupted": True} and _impl._counted(study) == 0


def test_an_unknown_key_in_the_space_is_named(app):
    process = app("w=interval(0,1)")
    assert process.returncode == 1
    assert "hydra.sweeper.params.w='interval(0,1)': names no key of the composed config" in process.stderr

