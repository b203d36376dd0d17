"""Watching the served model: drift between its training data and what arrived since, live metrics, and the
retraining replay over history."""
