"""The pyfuncs' former module name, kept for models registered before anipop's code moved into folders.

Why: such a model's loading script (anipop.serving.model_code, as it was then) imports
`anipop.served_pyfunc`; serving.model_loading.check_model_code accepts that former script byte for byte, and this name
lets it run unchanged. New models import anipop.serving.served_pyfunc.
"""

from anipop.serving.served_pyfunc import BundleModel, PitchModel

__all__ = ["BundleModel", "PitchModel"]
