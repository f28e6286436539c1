"""Orchestration: probe trials and compare arms, which run selection, augmentation,
training and scoring together (the only package that imports all of them)."""
