"""Exporters: the serving wrapper (the artifact contract), ExecuTorch (.pte) and ONNX (.onnx).

Heavy imports (executorch, onnx, onnxruntime) stay inside the functions that use them.
"""
