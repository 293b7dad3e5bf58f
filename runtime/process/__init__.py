"""Generic plumbing for rt's own child processes (the model process of :mod:`runtime.llm.worker`,
the quantizer of :mod:`convert.quantize`): how they start (:mod:`launch`), the framed pipe
(:mod:`channel`, :mod:`pipe_reader`), how they end with their parent (:mod:`lifeline`), what a
crash means (:mod:`crash`) and the Windows-only calls (:mod:`windows`)."""
