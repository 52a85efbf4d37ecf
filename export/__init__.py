"""Export of trained models to SavedModel (TF Serving) and TFLite/LiteRT.

Installed as `tf_propo.export`. Not written yet: see the project's export issue.
"""
