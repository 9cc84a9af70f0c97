"""tfseg: semantic segmentation of Oxford-IIIT Pet with Keras 3.

Model builders (`tfseg.models`) need only Keras; the data pipeline and the
training command use TensorFlow.
"""

from tfseg.models import create_model
from tfseg.models import list_models

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "__version__"]
