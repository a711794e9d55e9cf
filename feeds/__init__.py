"""Feed building (RSS 2.0, Atom, JSON Feed) and feed serving logic. Pure: no Celery, no database."""
