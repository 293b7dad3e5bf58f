"""The language model: :class:`~runtime.llm.model.Model` (the API), the llama.cpp engine behind it
and the model's own child process (:mod:`worker`, :mod:`child`), sampling, token-to-text assembly,
chat templates, llama.cpp's native setup, and a remote server in its place (:mod:`remote`)."""
