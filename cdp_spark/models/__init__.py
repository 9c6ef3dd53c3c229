"""Predictive scores: churn and propensity classifiers (MLlib + MLflow) and CLV (BG/NBD + Gamma-Gamma)."""
