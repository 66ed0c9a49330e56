"""``--help`` prints Hydra's own help, made from one copy of the config repository."""

import subprocess
import sys

from conftest import ROOT

# the command, run as `python src/train.py ARGS` is, counting the copies Hydra makes of
# its config repository; "hydra" in argv[1] undoes tssweep's listing: Hydra's own
COMMAND = """
import atexit, runpy, sys
sys.path.insert(0, {src!r})
from hydra._internal import config_repository
from tssweep import help

copies = []
made = config_repository.CachingConfigRepository.__init__
def counted(self, delegate):
    copies.append(1)
    made(self, delegate)
config_repository.CachingConfigRepository.__init__ = counted
if sys.argv[1] == "hydra":
    help.list_groups_once = lambda: None
atexit.register(lambda: print(f"copies: {{len(copies)}}", file=sys.stderr))
sys.argv = [{train!r}, *sys.argv[2:]]
runpy.run_path({train!r}, run_name="__main__")
"""


def printed(whose: str, *args: str) -> tuple[str, int]:
    script = COMMAND.format(src=str(ROOT / "src"), train=str(ROOT / "src" / "train.py"))
    done = subprocess.run([sys.executable, "-c", script, whose, *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, int(done.stderr.rsplit("copies: ", 1)[1].split()[0])


def test_help_is_hydras_own_text_from_one_copy_of_the_repository():
    for args in (["--help"], ["-h", "model=naive"], ["--hydra-help"]):
        ours, our_copies = printed("tssweep", *args)
        hydras, hydras_copies = printed("hydra", *args)
        assert ours == hydras, args  # to the character
        assert hydras_copies > 100 and our_copies <= 3, (args, our_copies, hydras_copies)
    ours, _ = printed("tssweep", "--help")
    groups = dict(line.split(": ", 1) for line in ours.split("== Config ==")[0].splitlines() if ": " in line)
    assert set(groups["preprocess"].split(", ")) >= {"none", "log", "detrend", "deseasonalize", "minirocket"}
    assert set(groups["model"].split(", ")) >= {"catboost", "naive"}
    assert "catboost_optuna" in groups["hparams_search"] and "ray" in groups["cluster"]
    # the config it shows is the one that runs, overrides included
    assert "_target_: sktime.forecasting.naive.NaiveForecaster" in \
        printed("tssweep", "-h", "model=naive")[0].split("== Config ==")[1]
