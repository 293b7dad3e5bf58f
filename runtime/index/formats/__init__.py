"""The format readers: plain text, HTML and PDF, Office files, OpenDocument, e-books, mail.

Each reader takes ``(handle, encoding, max_chars)`` and yields
:class:`~runtime.index.formats.base.Section` objects (:mod:`runtime.index.readers` picks the
reader by suffix); those of the richer formats
carry a ``location`` label ("Intro > Scope", "slide 7", "Sheet1 rows 2-40", a chapter title,
"message → attachment"). Libraries are imported inside the readers; a file they cannot read
raises :class:`~runtime.index.formats.base.UnreadableFileError` with a one-line reason.
"""
