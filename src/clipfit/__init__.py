"""clipfit: adapt pretrained CLIP-style models to few-shot image classification.

The Python API (`clipfit.train`, `clipfit.load`, `clipfit.fewshot`, `clipfit.base2new`, ...) lives in
`clipfit.api`, the papers' tables and figures (`clipfit.paper_list`, `clipfit.paper_run`) in `clipfit.papers`; each
is imported on first use, so `import clipfit` stays fast.
"""
import importlib

_API = ("train", "load", "Run", "GridResult", "fewshot", "base2new", "crossdataset", "domainshift", "regimes", "episodic",
        "paper_list", "paper_run", "demo", "methods", "datasets", "datasets_check", "params")
# the public names defined above the API, in the papers' layer (`datasets_check` there takes `paper=` too)
_PAPERS = {"paper_list": "clipfit.papers.listing", "paper_run": "clipfit.papers.reproduce",
           "datasets_check": "clipfit.papers.listing"}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name == "__version__":  # from the package metadata, read on first use
        from .version import version

        return version()
    if name in _API:  # imported here, on first use: torch and the rest load only when the API is used
        return getattr(importlib.import_module(_PAPERS.get(name, "clipfit.api")), name)
    raise AttributeError(f"module 'clipfit' has no attribute {name!r}")
