"""medsight.deploy: ONNX export of torch image models and ONNX Runtime inference.

Import :mod:`medsight.deploy.onnx` directly; this package imports nothing heavy on its own.
"""
