"""Export of trained pseudo optimizers for serving and on-device inference.

Installed as `tf_propo.export`.

    pipeline     the whole synthesis as one Keras model: target -> Gram statistics -> texture
    saved_model  SavedModel for TF Serving (serving_default, statistics, from_statistics)
    tflite       static-shape .tflite for LiteRT: none / fp16 / int8 / dynamic quantization
    write        export_model: any of them written and checked (the command, and
                 TextureSynthesizer.export)
    run          the LiteRT runner: python -m tf_propo.export.run --model=m.tflite ...
    __main__     the command: python -m tf_propo.export --model_dir=DIR --format=... --out=...
"""
