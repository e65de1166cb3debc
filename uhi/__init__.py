"""uhi: urban heat island analysis from Landsat Collection 2 Level-2 (Landsat 4-9)."""

from importlib.metadata import PackageNotFoundError, version

# the distribution is "uhi-landsat": the PyPI name "uhi" is Scikit-HEP's Unified Histogram
# Interface, whose version must never be reported as ours (README, "The name")
DISTRIBUTION = "uhi-landsat"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["DISTRIBUTION", "__version__"]
