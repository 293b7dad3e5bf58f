"""Where an index keeps its documents, chunks, vectors and settings.

:class:`~runtime.index.stores.base.IndexStore` is the seam: the :class:`~runtime.index.Index`
talks to a store only through it. The local store is SQLite (FTS5) with a FAISS cache
(:mod:`runtime.index.store`); a server database plugs in behind the same protocol.
"""
