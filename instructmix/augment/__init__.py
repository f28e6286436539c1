"""Data augmentation: Tree-Instruct complexity and SIT sequential chains (METHODS.md §3, §4)."""
