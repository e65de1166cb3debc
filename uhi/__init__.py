"""uhi: urban heat island analysis from Landsat 8/9 Collection 2 Level-2."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("uhi")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
