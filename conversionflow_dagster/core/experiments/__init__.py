"""Experiments and value: lift tests read on their own, and customer value per channel."""
