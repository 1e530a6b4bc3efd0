"""clipfit: adapt pretrained CLIP-style models to few-shot image classification.

The Python API (`clipfit.train`, `clipfit.load`, `clipfit.fewshot`, `clipfit.base2new`, ...) lives in
`clipfit.api` and is imported on first use, so `import clipfit` stays fast.
"""

_API = ("train", "load", "Run", "GridResult", "fewshot", "base2new", "crossdataset", "domainshift", "regimes", "episodic",
        "paper_list", "paper_run", "demo", "methods", "datasets", "datasets_check", "params")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name == "__version__":  # from the package metadata, read on first use
        from .version import version

        return version()
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'clipfit' has no attribute {name!r}")
