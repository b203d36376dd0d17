"""Features, estimators and the train step: everything a fitted ModelBundle is made of."""
