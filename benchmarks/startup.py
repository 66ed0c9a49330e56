"""How long ``python src/train.py --help``, ``--hydra-help`` and ``--cfg job`` take.

Each command runs as a fresh process, in interleaved rounds (a slow spell of the
machine hits every side); medians are printed. The baseline is measured in the same
run: the same ``--help`` with tssweep's group listing undone (``tssweep.help``), that
is, Hydra's own, and ``python -c "import hydra"``, what any Hydra app pays first. The
issue's target is 1 s for ``--help`` and ``--cfg job`` alike.

    .venv/bin/python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "src" / "train.py")
# src/train.py as the command runs it, with tssweep's listing undone: Hydra's own --help
HYDRAS_OWN = f"""
import gc, runpy, sys
gc.disable()  # as src/train.py does first: the imports below run as they would there
sys.path.insert(0, {str(ROOT / "src")!r})
from tssweep import help
help.list_groups_once = lambda: None
sys.argv = [{TRAIN!r}, *sys.argv[1:]]
runpy.run_path({TRAIN!r}, run_name="__main__")
"""
SIDES = {
    "import hydra": [sys.executable, "-c", "import hydra"],
    "--help, Hydra's own listing": [sys.executable, "-c", HYDRAS_OWN, "--help"],
    "--help": [sys.executable, TRAIN, "--help"],
    "--hydra-help": [sys.executable, TRAIN, "--hydra-help"],
    "--cfg job": [sys.executable, TRAIN, "--cfg", "job"],
}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds; medians are printed")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(args.repeats):
        for side, command in SIDES.items():
            walls[side].append(timed(command))
    median = {side: statistics.median(values) for side, values in walls.items()}
    own = median["--help, Hydra's own listing"]
    print(f"start-up, medians of {args.repeats} interleaved rounds, each a fresh process")
    print("  command                          wall    / Hydra's own --help")
    for side in SIDES:
        print(f"  {side:<31} {median[side]:5.2f} s   {median[side] / own:5.2f}")
    worst = max(median["--help"], median["--cfg job"])
    print(f"  target: --help and --cfg job <= 1 s (now {median['--help']:.2f} s and {median['--cfg job']:.2f} s: "
          f"{'met' if worst <= 1.0 else 'not met'})")


if __name__ == "__main__":
    main()
