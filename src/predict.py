"""Forecast with a registered or logged model: the periods after the data it was fitted on.

    python src/predict.py                                        # models:/tssweep-airline@champion
    python src/predict.py model=models:/tssweep-lynx@challenger horizon=5
    python src/predict.py model=models:/tssweep-gunpoint@champion data=series.ts

Hydra composes ``conf/predict/predict.yaml``; ``tssweep.prediction`` does the rest.
"""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tssweep.errors import said_alone

os.environ.setdefault("TSSWEEP_ROOT", str(Path(__file__).resolve().parents[1]))

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "predict"


@hydra.main(version_base="1.3", config_path="../conf/predict", config_name="predict")
@said_alone
def main(cfg: DictConfig) -> None:
    from tssweep.prediction import predict  # imported late so --help and --cfg stay fast

    predict(cfg)


if __name__ == "__main__":
    from tssweep import overrides
    from tssweep.errors import BadInput

    try:
        overrides.refuse_unknown(sys.argv[1:], CONF_DIR)
    except BadInput as err:
        print(err, file=sys.stderr)
        raise SystemExit(1) from None
    main()
