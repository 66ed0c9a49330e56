"""tssweep's Hydra launcher for Ray clusters (``cluster=ray``)."""
