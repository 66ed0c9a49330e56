#!/usr/bin/env bash
# Run hydra-optuna-sweeper's own test file against tssweep's sweeper (or, with
# --official, against the plugin itself), from a checkout of Hydra's repository:
#
#   benchmarks/official_optuna_tests.sh /path/to/hydra [--official | --impl] [pytest args]
#
# The plugin's tests and examples are copied from the checkout's tag v1.3.2 (the code
# of the 1.3.0 wheel) into a temp dir, never into this repository. Unless --official,
# the copy selects `hydra/sweeper=tssweep_optuna` instead of `optuna` and tests
# tssweep's classes (ResumableOptunaSweeper, ResumableSearch) where the file names the
# plugin's (OptunaSweeper, OptunaSweeperImpl); the distribution helpers stay the
# plugin's, which tssweep reuses (--impl takes them from tssweep's _impl module too). Optuna's FutureWarnings about the distributions the
# plugin builds are silenced, in the examples' subprocesses too.
set -euo pipefail
hydra_repo=$1; shift
mode=tssweep
if [ "${1:-}" = "--official" ]; then mode=official; shift; fi
if [ "${1:-}" = "--impl" ]; then mode=impl; shift; fi
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$hydra_repo" archive v1.3.2 plugins/hydra_optuna_sweeper/tests \
    plugins/hydra_optuna_sweeper/example | tar -x -C "$work"
root=$work/plugins/hydra_optuna_sweeper
# chdir_plugin_root() looks for the plugin's setup.py above the test file
git -C "$hydra_repo" show v1.3.2:plugins/hydra_optuna_sweeper/setup.py > "$root/setup.py"
if [ "$mode" != official ]; then
    sed -i -E 's/(hydra\/sweeper[:=] ?)optuna\b/\1tssweep_optuna/' \
        $(grep -rl "hydra/sweeper" "$root")
    sed -i -E \
        -e 's/^from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl$/from hydra_plugins.tssweep_optuna_sweeper._impl import ResumableSearch as OptunaSweeperImpl/' \
        -e 's/^from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper$/from hydra_plugins.tssweep_optuna_sweeper.sweeper import ResumableOptunaSweeper as OptunaSweeper/' \
        "$root/tests/test_optuna_sweeper_plugin.py"
    grep -q "ResumableSearch as OptunaSweeperImpl" "$root/tests/test_optuna_sweeper_plugin.py"
    grep -q "ResumableOptunaSweeper as OptunaSweeper" "$root/tests/test_optuna_sweeper_plugin.py"
fi
if [ "$mode" = impl ]; then  # the module-level helpers taken from tssweep's module too
    sed -i -E 's/^from hydra_plugins.hydra_optuna_sweeper import _impl$/from hydra_plugins.tssweep_optuna_sweeper import _impl/' \
        "$root/tests/test_optuna_sweeper_plugin.py"
    grep -q "from hydra_plugins.tssweep_optuna_sweeper import _impl" "$root/tests/test_optuna_sweeper_plugin.py"
fi
# The test file runs its examples with -Werror; a sitecustomize (run after -W is
# applied) puts the FutureWarning filter in front of it, in those subprocesses too.
printf 'import warnings\nwarnings.filterwarnings("ignore", category=FutureWarning)\n' \
    > "$work/sitecustomize.py"
export PYTHONPATH=$work${PYTHONPATH:+:$PYTHONPATH}
cd "$root"
exec "$python" -m pytest -p no:cacheprovider -o addopts="" -W "ignore::FutureWarning" \
    -W "ignore::DeprecationWarning" tests/test_optuna_sweeper_plugin.py "$@"
