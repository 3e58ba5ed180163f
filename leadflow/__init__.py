"""leadflow: marketing and sales events joined per lead into one shared SQL store.

The product lives in four layers, each importing only the ones below it:
``leadflow.schemas`` <- ``leadflow.sinks`` <- ``leadflow.agents`` <- ``leadflow.pipeline``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("leadflow")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"
