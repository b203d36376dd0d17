# anipop pitch model, loaded from code by MLflow: its data (predictor.json, model.skops, onnx/) are the model's artifacts
import mlflow.models

from anipop.serving.served_pyfunc import PitchModel

mlflow.models.set_model(PitchModel())
