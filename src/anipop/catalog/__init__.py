"""What anipop knows by name: the input kinds, the model catalog and the metrics; config derives its
allowed values from these registries, so nothing here imports a step."""
