"""Train, backtest and log one time-series pipeline; with ``-m``, sweep over many.

    python src/train.py                                   # one run, default config
    python src/train.py -m preprocess=none,log,detrend    # one parent run, three children

Hydra composes ``conf/``; everything else lives in the ``tssweep`` package.
"""

import atexit
import gc
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tssweep.errors import said_alone

# conf/paths/default.yaml puts outputs/ under the checkout, wherever the command runs
os.environ.setdefault("TSSWEEP_ROOT", str(Path(__file__).resolve().parents[1]))
# numba compiles MiniRocket and catch22 once, into outputs/, not at every run
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.environ["TSSWEEP_ROOT"], "outputs", "numba_cache"))
# a forecaster's model folder, all but its pipeline, is written once, not in every process
# (tssweep.tracking.models.TEMPLATES_ENV)
os.environ.setdefault("TSSWEEP_MODEL_TEMPLATES", os.path.join(os.environ["TSSWEEP_ROOT"], "outputs", "model_templates"))
# Registered first, so it runs last: Python's final garbage collection would walk every
# object sktime, MLflow and CatBoost made (about a second here) with nothing to free.
atexit.register(gc.freeze)
# Start-up makes only objects that live as long as the process: no collection until the
# first job (tssweep.startup.done), which keeps them out of every later one.
gc.disable()


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@said_alone
def main(cfg: DictConfig) -> float:
    from tssweep.checks import check_single_run

    check_single_run(cfg)  # before the job's imports: a bad value is named at once
    from tssweep.job import run_job  # imported late so --help and --cfg stay fast

    return run_job(cfg)


if __name__ == "__main__":
    from tssweep import interrupts, overrides
    from tssweep.errors import BadInput
    from tssweep.help import asks_for_help, list_groups_once
    from tssweep.tracking import writer

    interrupts.install()
    if asks_for_help(sys.argv[1:]):
        list_groups_once()  # Hydra's listing, without a copy of its configs per group
    if overrides.sweeps(sys.argv[1:]):
        # a sweep's MLflow work is its writer's: forked now, it imports MLflow while
        # this process composes the config and checks it (tssweep.tracking.writer)
        writer.prefork()
    try:
        # a typo in an option is named, with its near matches, before Hydra runs; in a
        # key, when Hydra composes the config (once for a sweep, not once more for this)
        overrides.refuse_unknown(sys.argv[1:], CONF_DIR)
    except BadInput as err:
        print(err, file=sys.stderr)
        raise SystemExit(1) from None
    try:
        main()
    except KeyboardInterrupt:
        # runs, trials and the sweep's parent are closed on the way out (atexit)
        print(f"Interrupted (received {interrupts.signal_name()}): runs in progress are "
              "closed as KILLED; run the same command again to resume a search.", file=sys.stderr)
        raise SystemExit(130) from None
