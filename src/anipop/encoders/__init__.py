"""The encoders: text (torch or ONNX Runtime) and image (a descriptor or a ResNet), loaded from local weights,
and the per-item cache of the vectors they give.

Apart from the embed step (anipop.embedding) because every layer that turns a pitch into vectors loads them:
the embed step, the served predictor, fine-tuning and the paper-mode study. They read only the settings.
"""
