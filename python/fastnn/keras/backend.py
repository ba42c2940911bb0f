"""The part of ``keras.backend`` a fastnn user needs: ``clear_session()``."""
from ._naming import clear_session

__all__ = ["clear_session"]
