"""Evaluation: the paper's metrics, the phase-3 attacker suite, reports."""
