"""Model files: GGUF header checks (:mod:`gguf_file`), known architectures, the memory preflight,
the model registry and the embedded defaults shipped on PyPI."""
