"""Meta-Deploy: a wrapper as a GGUF sidecar or a control vector on stock llama.cpp, and the parity checks."""
