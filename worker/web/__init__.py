"""The HTTP app: feeds with conditional GET, the ingest API, status, health and the offline demo site.

Feeds take a raw ASGI fast path (:class:`~worker.web.middleware.FeedFastPath`) in front of FastAPI's
routing: a hit is answered from the process's :class:`~worker.feedcache.FeedCache` with prebuilt
headers, no database and usually no Redis round trip; a miss falls through to the FastAPI route,
which explains the 404.

One concern per module:

- :mod:`~worker.web.app`: :func:`~worker.web.app.create_web_app` (the middleware stack, health,
  metrics, the demo site, offline API docs) and the uvicorn options;
- :mod:`~worker.web.middleware`: the ASGI layers in front of routing (feed fast path, token gate,
  body limit); :mod:`~worker.web.headers`: the security headers;
- :mod:`~worker.web.auth`: tokens and the route dependencies (``RT``, ``require_token``);
- :mod:`~worker.web.models`: the ingest request and the API's answer shapes;
  :mod:`~worker.web.handlers`: 422 and full-disk answers;
- :mod:`~worker.web.feeds`: feed, archive, OPML and stylesheet routes;
- :mod:`~worker.web.api`: ingest, preview, retry and story routes;
- :mod:`~worker.web.status`: the status routes; :mod:`~worker.web.statuspage`: the page they render.
"""
