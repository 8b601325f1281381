"""Synthetic data with known truth: event logs, weekly panels and parameter exports."""
