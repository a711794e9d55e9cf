"""Operations: keeping the deployment running and showing how it runs.

The sweep that re-enqueues orphaned work (with its read-only look at the broker), heartbeats, the
beat leader lock and schedule reload, config-reload reporting, the ``/metrics`` collector, the
status data and the labels tasks carry for Flower. Stage and library modules never import this
package; it imports them. (The counters themselves, :mod:`worker.metrics`, stay beside the stages:
fetches, renders and shares are counted where they happen.)
"""
