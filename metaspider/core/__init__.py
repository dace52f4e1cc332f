"""Meta-Core: backbones (llama.cpp, Torch), the wrapper and its file formats, the model registry, the two-pass pipeline."""
