"""Text augmentation of the training split: EDA operations, character noise, span masking,
sentence shuffles and early-modern spelling variants (docs/labeling.md)."""
