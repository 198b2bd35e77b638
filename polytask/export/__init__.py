"""Deployment artefacts: the whole multi-task model as one ONNX graph plus the manifest decoding needs.

``onnx_export.export_run`` (needs torch, onnx, onnxscript) writes ``model.onnx`` and
``manifest.json`` (vocabularies, label spaces, decoding settings); ``serving.onnx_predictor``
(needs only onnxruntime and numpy) reads them and predicts the same records as the torch run.
"""
