# anipop bundle model, loaded from code by MLflow: its data (model.skops, scaler.json) are the model's artifacts
import mlflow.models

from anipop.serving.served_pyfunc import BundleModel

mlflow.models.set_model(BundleModel())
