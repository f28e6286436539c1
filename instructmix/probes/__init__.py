"""Probe analysis: interaction matrix and dependency DAG (Beyond IID)."""
