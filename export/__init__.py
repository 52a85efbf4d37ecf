"""Export of the fast synthesis for serving and on-device inference: image quilting with its
polish (the default), or a trained pseudo optimizer.

Installed as `tf_propo.export`.

    quilting     image quilting as graph ops (DFT correlations, unrolled seams, a while loop)
    polish       projected L-BFGS on VGG19's first block, with LiteRT-builtin gradients
    pipeline     the whole synthesis as one Keras model: target -> statistics -> texture
    saved_model  SavedModel for TF Serving (serving_default, statistics, from_statistics)
    tflite       static-shape .tflite for LiteRT: none / fp16 / int8 / dynamic quantization
    write        export_model: any of them written and checked (the command, and
                 TextureSynthesizer.export)
    run          the LiteRT runner: python -m tf_propo.export.run --model=m.tflite ...
    __main__     the command: python -m tf_propo.export [--model_dir=DIR] --format=... --out=...
"""
