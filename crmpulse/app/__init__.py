"""The application layer: the ``crmpulse`` verbs, the demo and the local stack.

The only place that knows every component. It joins them by calling their
functions with parameters and reading their structured results (the load test's
``report.json``, the alert generator's return value), never by rewriting
generated text or parsing another program's output. The core (``crmpulse/*.py``)
and the components (``crmpulse.probes``, ``.loadtests``, ``.alerts``,
``.dashboards``) never import this package.
"""
