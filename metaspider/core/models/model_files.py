"""What both backbones need to know about a model file before loading it: its fingerprint and chat
template. Computed from the file itself, so Torch and llama.cpp agree on both by construction."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import gguf

from metaspider.core.models.pypi_fetch import sha256_of
from metaspider.core.models.registry import MODELS, chat_template_override, models_dir
from metaspider.errors import MetaspiderError

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def fingerprint(path: Path) -> str:
    """Identifies the exact base-model weights a wrapper was trained on.

    Registry models use their pinned checksum; other files are hashed once and the digest is kept
    next to them, keyed by size and modification time."""
    for entry in MODELS.values():
        if path == models_dir() / entry.filename:
            return f"sha256:{entry.source.sha256[:16]}"
    return f"sha256:{_file_digest(path)[:16]}"


def _file_digest(path: Path) -> str:
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    if not files:
        raise MetaspiderError(f"{path}: no .gguf file and no .safetensors weights to fingerprint")
    stamp = Path(str(files[0]) + ".sha256")
    key = ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    if stamp.exists() and stamp.read_text().startswith(key + "\n"):
        return stamp.read_text().split("\n")[1]
    digest = "".join(sha256_of(f) for f in files) if len(files) > 1 else sha256_of(files[0])
    try:
        stamp.write_text(f"{key}\n{digest}\n")
    except OSError:
        pass  # read-only model folders just get hashed again next time
    return digest


@lru_cache(maxsize=8)
def gguf_fields(path: Path) -> dict[str, object]:
    """Scalar and string metadata of a GGUF file (arrays like the vocabulary are skipped)."""
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:
        raise MetaspiderError(f"{path} is not a readable GGUF file: {exc}") from None
    fields: dict[str, object] = {}
    for name, field in reader.fields.items():
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
            continue
        fields[name] = field.contents()
    return fields


def chat_template(name_or_path: str, path: Path, embedded: Callable[[Path], str | None] | None = None) -> str:
    """The registry's template when the file has none (base models), else the file's own.

    `embedded` reads the file's template; llama.cpp passes its own metadata reader, which is much faster
    than parsing the whole GGUF in Python."""
    override = chat_template_override(name_or_path)
    if override:
        return override
    template = (embedded or _embedded_template)(path)
    return str(template) if template else CHATML_TEMPLATE


def _embedded_template(path: Path) -> str | None:
    if path.is_dir():
        config = path / "tokenizer_config.json"
        return json.loads(config.read_text()).get("chat_template") if config.exists() else None
    template = gguf_fields(path).get("tokenizer.chat_template")
    return template if isinstance(template, str) else None
