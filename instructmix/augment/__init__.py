"""Data augmentation: Tree-Instruct complexity and SIT sequential chains."""
