"""What every pipeline step shares and no step owns: the typed settings (config), the hand-offs between steps
(artifacts: where each file lives, the model bundle), small helpers (utils), and what anipop knows by name (the
input kinds, the model catalog, the metrics), from which config derives its allowed values. Nothing here imports
a step, so every stage of dvc.yaml depends on this one folder."""
