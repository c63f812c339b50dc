"""The pyfunc's model-from-code entry point (MLflow executes this file to build the model).

Logged as the model's code instead of a pickled object: nothing is unpickled at serving time.
"""

from mlflow.models import set_model

from elmo.registry.pyfunc import DirModel

set_model(DirModel())
