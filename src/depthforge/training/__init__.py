"""training/: the Lightning module, data loading for training (samplers, baselines) and ``fit``."""
