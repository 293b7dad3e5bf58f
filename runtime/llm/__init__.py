"""The language model: :class:`~runtime.llm.model.Model` (the API), the llama.cpp engine behind it,
sampling, token-to-text assembly, chat templates and llama.cpp's native setup."""
