"""tssweep's Optuna sweeper: hydra-optuna-sweeper made resumable, failure-tolerant and
able to prune trials fold by fold. Select it with ``hydra/sweeper=tssweep_optuna``."""
