"""The public API, one router a resource: each module's `router(settings)` (the settings give the bounds its
parameters show in the OpenAPI schema)."""
from dogsearch.services.gateway.routers import dogs, jobs, me, pose, search, watches

ALL = (dogs, search, pose, jobs, me, watches)
