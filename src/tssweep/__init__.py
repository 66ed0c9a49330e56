"""tssweep: Hydra-configured sweeps for time-series machine learning, tracked in MLflow.

The data path is one straight line, one module per step and per config group:
``dataset -> preprocess -> model -> evaluate``; ``job`` runs that line for one
Hydra job and hands the result to ``tracking``, the only module that talks to MLflow
(with the Hydra callback in ``callbacks`` that opens one parent run per sweep).
"""

__version__ = "0.1.0"
