"""Scoring the fitted models: the test split, CV and temporal backtests, intervals, plots, MLflow runs."""
