"""Training-free optimal-transport texture synthesis (Risser, "Optimal Textures", 2020).

Installed as `tf_propo.ot` (a top-level package named `ot` would shadow POT). The covariance
matching and sliced-OT functions are not written yet: see the project's OT issue.
"""
