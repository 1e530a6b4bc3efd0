"""clipfit: adapt pretrained CLIP-style models to few-shot image classification."""

__version__ = "0.1.0"
