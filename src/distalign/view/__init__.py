"""``distalign view``: a local, read-only, offline web viewer for results folders.

:class:`~distalign.view.queries.ViewData` loads the items once; :func:`~distalign.view.app.
create_app` serves them (Starlette, Jinja2 with autoescape, a strict CSP, no script).
Starlette and uvicorn come with the ``view`` extra: ``pip install 'distalign[view]'``.
"""
