"""The stitcher: per-service log files in, per-trace narratives out.

A pipeline of stages, one module each, plain data between them:
read -> parse -> group by trace -> build span tree -> correct clocks ->
order -> render. Nothing here is imported by ``import logtrace``.
"""
