"""``logtrace demo``: three real services, a few dozen requests, the stitched story.

:mod:`.services` holds the three FastAPI apps (gateway, orders,
inventory), set up as the docs tell users to; :mod:`.run` starts them on
127.0.0.1, sends the requests and stitches what they logged. Needs the
``demo`` extra (FastAPI, uvicorn, httpx, python-json-logger, the stitcher).
"""
