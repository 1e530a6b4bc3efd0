"""Where a model comes from: the embedded model, a local folder, or the Hugging Face hub (checked for reachability
once, quickly, so that an offline machine gets one clear line in seconds instead of minutes of retries).

Imports neither torch nor transformers, so that the command line starts fast."""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from .errors import ClipfitError

EMBEDDED_MODEL = "clipfit/mini-clip"
ASSETS = Path(__file__).parent / "assets"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
PROBE_SECONDS = 3.0

# Architectures for `clipfit params` (counts on a random initialisation, no download).
ARCHS: dict[str, dict] = {
    "ViT-B/16": dict(text=(512, 2048, 12, 8), vision=(768, 3072, 12, 12), patch=16, image=224, proj=512),
    "ViT-B/32": dict(text=(512, 2048, 12, 8), vision=(768, 3072, 12, 12), patch=32, image=224, proj=512),
    "ViT-L/14": dict(text=(768, 3072, 12, 12), vision=(1024, 4096, 24, 16), patch=14, image=224, proj=768),
}
# Base architectures of the other families for `clipfit params` (their sources: clipfit/families/archs.py).
_BASE = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
FAMILY_ARCHS: dict[str, dict] = {
    "siglip-base-patch16-224": dict(family="siglip", text=dict(_BASE, vocab_size=32000, max_position_embeddings=64),
                                    vision=dict(_BASE, image_size=224, patch_size=16)),
    "siglip2-base-patch16-224": dict(family="siglip", text=dict(_BASE, vocab_size=256000, max_position_embeddings=64),
                                     vision=dict(_BASE, image_size=224, patch_size=16)),
}


def resolve_model_path(name: str | None) -> str:
    """The embedded model's folder for None / 'clipfit/mini-clip' / 'mini'; otherwise `name` unchanged."""
    if name in (None, "", EMBEDDED_MODEL, "mini"):
        path = ASSETS / "mini-clip"
        if not (path / "config.json").exists():
            raise ClipfitError(f"the embedded model is missing from {path}; reinstall clipfit or run `clipfit pretrain-mini`")
        return str(path)
    return name  # type: ignore[return-value]


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def offline_by_choice() -> bool:
    return _truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE")


@functools.cache
def hub_reachable(timeout: float = PROBE_SECONDS) -> bool:
    """One attempt to open a connection to the hub (or to the HTTPS proxy), in a thread so that a hanging name
    lookup cannot stall the caller for longer than `timeout`. Remembered for the rest of the process."""
    import socket
    import threading
    from urllib.parse import urlparse
    from urllib.request import getproxies

    url = getproxies().get("https") or os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    target = urlparse(url if "://" in url else f"http://{url}")
    host, port = target.hostname, target.port or (443 if target.scheme == "https" else 80)
    result: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def model_source(name: str | None) -> tuple[str, dict]:
    """(folder or hub id, extra `from_pretrained` arguments) for a `--model` value. One-line errors, in seconds, for
    a folder that does not exist, a name that is no hub id, and a hub model that is neither cached nor reachable
    (offline: `HF_HUB_OFFLINE=1`, or the hub cannot be reached); a cached hub model loads offline."""
    path = resolve_model_path(name)
    if os.path.isdir(path):
        return path, {}
    looks_local = path.startswith((".", "/", "~")) or path.count("/") > 1 or (os.sep != "/" and os.sep in path) or (
        "/" in path and os.path.isdir(os.path.dirname(path)))
    if looks_local:
        raise ClipfitError(f"model directory not found: {path}")
    if not HUB_ID.fullmatch(path):
        raise ClipfitError(f"--model {path!r} is neither a local folder nor a Hugging Face hub id (owner/name, e.g. "
                           "openai/clip-vit-base-patch16)")
    if offline_by_choice():
        why = "HF_HUB_OFFLINE is set"
    elif not hub_reachable():
        why = "the hub cannot be reached (no network?)"
    else:
        return path, {}
    if not _cached(path):
        raise ClipfitError(f"model {path!r} is not in the local Hugging Face cache and {why}; pass a local folder "
                           "(--model PATH), or download it once with network access")
    return path, {"local_files_only": True}
