"""Readers for documents that are not plain text: Office files, OpenDocument, e-books, mail.

Each reader takes ``(handle, encoding, max_chars)`` like the readers in
:mod:`runtime.index.readers` and yields :class:`~runtime.index.readers.Section` objects that
carry a ``location`` label ("Intro > Scope", "slide 7", "Sheet1 rows 2-40", a chapter title,
"message → attachment"). Libraries are imported inside the readers; a file they cannot read
raises :class:`~runtime.index.readers.UnreadableFileError` with a one-line reason.
"""
