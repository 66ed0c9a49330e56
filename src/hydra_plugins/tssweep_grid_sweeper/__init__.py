"""tssweep's grid sweeper: Hydra's basic sweeper, each job composed once. The default
of ``conf/config.yaml``; ``hydra/sweeper=basic`` gives Hydra's own back."""
