"""Deployment without the training code: the whole multi-task model as one ONNX graph, and a torch-free runtime.

``onnx_export.export_run`` (needs torch, onnx, onnxscript) writes ``model.onnx`` and
``manifest.json`` (vocabularies, label spaces, decoding settings); ``runtime.OnnxPredictor``
(needs only onnxruntime and numpy) reads them and predicts the same records as the torch run.
"""
