"""Stories: which articles report the same event, whatever their wording, markup or language.

:mod:`worker.stories.match` holds the one decision function (``decide(a, b)``) and the batch
:class:`~worker.stories.match.Matcher` that the pipeline and ``syndicate story match`` share; the
per-article features are in :mod:`~worker.stories.features`, the pairwise signals in
:mod:`~worker.stories.signals`, the multilingual sentence embedder in :mod:`~worker.stories.embed`.
"""
