"""Deployment: exporting a run's model and running what was exported.

ARCHITECTURE. `export` writes SavedModel, TFLite (float32, float16,
dynamic-range or int8, logits or argmax) and ONNX files with a JSON sidecar;
`runtimes` loads an exported file with the runtime a user deploys with
(LiteRT, onnxruntime, TensorFlow) behind the interface of a Keras model, so
`tfseg.evaluate` and `tfseg.inference` score and use it like a run's model;
`predict` is `tfseg predict`: masks, colour masks and overlays of a user's
own images. Importing this package imports no Keras.
"""
