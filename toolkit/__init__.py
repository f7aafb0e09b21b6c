"""Edge recommender toolkit: distil a large recommender into a small one that fits a device.

Heavy dependencies (torch, executorch, onnxruntime) are imported inside the functions that need
them, so `import toolkit` and `python -m toolkit --help` stay fast.
"""

from toolkit.core.errors import DoesNotFitError, ToolkitError

__version__ = "0.1.0"
__all__ = ["DoesNotFitError", "ToolkitError", "__version__"]
