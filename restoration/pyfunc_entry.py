"""MLflow "models from code" entry point: MLflow executes this file to get the model object, so loading a logged
pipeline model never unpickles anything. Not meant to be imported by the package itself."""

from mlflow.models import set_model

from restoration.mlflow_model import RestorationModel

set_model(RestorationModel())
