"""What a producer's pitch meets: parsing it, the predictor, and the MLflow pyfunc that serves it."""
