"""The model process: the parent's proxy (:mod:`worker`), the child's loop (:mod:`child`), the
framed pipe between them (:mod:`channel`) and what a crash of the child means (:mod:`crash`)."""
