"""Training-free optimal-transport texture synthesis (Risser, "Optimal Textures", 2020).

Installed as `tf_propo.ot` (a top-level package named `ot` would shadow POT).

    linalg   covariance matching: cholesky / eigh (ZCA) / pca whitening and colouring
    sliced   random rotations, 1-D matching by sorting or binned CDF, sliced Wasserstein

    decoders per-layer decoders (features -> image), trained by python -m tf_propo.train
             --flagfile=configs/decoders.flags

    synthesis coarse-to-fine encode / match / decode: python -m tf_propo.synthesize --method=ot
"""

# The strategies by name and the defaults, without TensorFlow: the apps define their flags
# and check what they are given before they import it.
STRATEGIES = ("cholesky", "eigh", "pca", "cdf", "sliced")
# The strategy where none is asked for: Risser's binned CDFs. On the held-out benchmark it
# scored as exact sorting (median 1.85 against 1.91) in three quarters of its time on a
# 2-core CPU, where sliced's sorts reach OT's 2.5 s per 256² texture (docs/results).
DEFAULT_STRATEGY = "cdf"
# Rotations per layer for sliced / cdf: at 256² three reach the loss of four, a quarter
# faster (benchmarks/ot.py).
DEFAULT_PASSES = 3
