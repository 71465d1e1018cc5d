"""lpgnas: find small, fast graph neural networks (joint architecture + bit-width search in JAX)."""

from lpgnas.errors import ConfigError, DataError, LpgnasError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "LpgnasError", "__version__"]
