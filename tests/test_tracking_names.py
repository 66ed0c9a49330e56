"""Run names: what differs, short enough for MLflow's name column, distinct in a sweep."""

import itertools

from tssweep.tracking.names import GROUPS, MAX_LENGTH, child_name, parent_name, single_name


def test_children_are_named_by_their_swept_values_without_group_prefixes():
    swept = ["preprocess", "model", "model.depth"]
    assert child_name(["preprocess=detrend", "model=naive", "tracking.uri=x"], swept[:2]) == "detrend · naive"
    assert child_name(["preprocess=log", "model.depth=6", "seed=1"], ["preprocess", "model.depth"]) == "log · depth=6"
    # the same leaf under two groups keeps its full key
    assert child_name(["m.depth=6", "x.depth=2"], ["m.depth", "x.depth"]) == "m.depth=6 · x.depth=2"
    # a file by its name
    assert child_name(["dataset.path=/data/co2_monthly.csv"], ["dataset.path"]) == "co2_monthly"


def test_long_names_are_cut_to_the_column_and_stay_distinct():
    options = ["log_deseasonalize_detrend", "deseasonalize"]
    names = [child_name([f"preprocess={p}", f"model.learning_rate={lr}"], ["preprocess", "model.learning_rate"], num)
             for num, (p, lr) in enumerate(itertools.product(options, [0.05, 0.1, 0.2]))]
    assert all(len(name) <= MAX_LENGTH for name in names)
    assert len(set(names)) == len(names)
    assert names[0].startswith("log_deseasonalize_d") and names[0].endswith("#0")


def test_parents_say_what_the_sweep_compares():
    assert parent_name(["preprocess=none,log,detrend", "tracking.uri=x"], "airline", search=False) == \
        "airline · preprocess ×3"
    assert parent_name(["dataset=airline,lynx", "model=catboost,naive"], "airline", search=False) == \
        "dataset ×2 · model ×2"
    assert parent_name(["seed=range(0,8)"], "co2_monthly", search=False) == "co2_monthly · seed ×8"
    assert parent_name(["hparams_search=catboost_optuna"], "lynx", search=True) == "search lynx"


def test_a_single_run_is_named_by_its_dataset_and_what_the_command_changed():
    assert single_name([], "airline", "none") == "airline · none"
    assert single_name(["preprocess=log", "model.depth=6", "tracking.uri=x", "dataset.horizon=6"],
                       "airline", "log") == "airline · log · depth=6"


def test_the_groups_are_the_config_groups():
    from conftest import CONF

    # predict/ is src/predict.py's own config folder, not a group of the training config
    assert GROUPS == {path.name for path in CONF.iterdir() if path.is_dir()} - {"hydra", "predict"}
    assert child_name(["seed=3"], ["seed"]) == "seed=3"  # not a group: the key stays
