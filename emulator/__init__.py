"""The offline stand-ins for Azure: the Automated ML emulator and its settings.

Heavy modules (scikit-learn, xgboost) load only when an experiment runs.
"""

from .settings import validate_settings

__all__ = ["validate_settings"]
