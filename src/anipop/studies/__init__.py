"""Side studies beside the production path: the paper's setup, ablations, tuning, the results table."""
