"""Probe analysis: interaction matrix and dependency DAG (METHODS.md section 1)."""
