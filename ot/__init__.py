"""Training-free optimal-transport texture synthesis (Risser, "Optimal Textures", 2020).

Installed as `tf_propo.ot` (a top-level package named `ot` would shadow POT).

    linalg   covariance matching: cholesky / eigh (ZCA) / pca whitening and colouring
    sliced   random rotations, 1-D matching by sorting or binned CDF, sliced Wasserstein

    decoders per-layer decoders (features -> image), trained by python -m tf_propo.train
             --flagfile=configs/decoders.flags

    synthesis coarse-to-fine encode / match / decode: python -m tf_propo.synthesize --method=ot
"""
