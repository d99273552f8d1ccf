"""The search service's API, one router a resource: the collection, its points, queries."""
from dogsearch.services.search.routers import collection, points, query

ALL = (collection.router, points.router, query.router)
