"""What can go wrong with the gallery's dogs and photos, in its own terms."""
from __future__ import annotations

from dogsearch.core.errors import Conflict, DogsearchError, NotFound


class DogNotFound(NotFound):
    """No dog with that id."""


class PhotoMissing(NotFound):
    """The dog exists but its photo is not in the photo store."""


class PhotoDamaged(DogsearchError):
    """A stored photo that passed its checks when it came in no longer decodes."""


class ModelMismatch(Conflict):
    """The embedder serves another model than the one whose vectors the collection holds."""
