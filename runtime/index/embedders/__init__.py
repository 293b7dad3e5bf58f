"""Embedding models behind one protocol (:class:`~runtime.index.embedders.base.Embedder`), one
module per implementation and a factory (:func:`~runtime.index.embedders.factory.query_embedder`).
Nothing is imported here: a caller loads only the implementation it names."""
