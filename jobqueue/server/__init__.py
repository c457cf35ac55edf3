"""The HTTP face: a FastAPI app on uvicorn (the ``server`` extra), served by ``jobqueue serve``.

A thin adapter over the same admin layer and ``Client`` the CLI and the TUI use, so every
face shows the same figures:

    serve.py     bind (127.0.0.1 only without a token), log, run uvicorn
    processes.py server.processes > 1: one socket each (SO_REUSEPORT), restarted if they die
    app.py       build the app: routers, error handlers, CORS, the dashboard's static files
    deps.py      what a request needs (settings, client, tokens, events) and the auth check
    auth.py      bearer tokens with roles, compared in constant time
    errors.py    one JSON error shape for every failure
    models.py    pydantic models: request bodies, responses, and so the OpenAPI document
    events.py    one poller per process feeding every Server-Sent Events client
    audit.py     one log line per mutating call, naming the token (never its value)
    routes/      one module per resource: jobs, queues, dlq, events, ops (metrics, probes)
    static/      the dashboard: plain HTML, CSS and JS, uPlot vendored with its licence

Nothing below this package imports it.
"""
