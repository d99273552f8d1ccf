"""What can go wrong with the gallery's dogs and photos, in its own terms."""
from __future__ import annotations

from dogsearch.core.errors import Conflict, DogsearchError, InvalidInput, NotFound


class DogNotFound(NotFound):
    """No dog with that id."""


class PhotoMissing(NotFound):
    """The dog exists but its photo is not in the photo store."""


class PhotoDamaged(DogsearchError):
    """A stored photo that passed its checks when it came in no longer decodes."""


class ModelMismatch(Conflict):
    """The embedder serves another model than the one whose vectors the collection holds."""


class NoDogFound(InvalidInput):
    """The detector found no dog in the photo (and a dog is required). `seems`: what the photo seems to show instead
    ([{"label", "p"}]), for the caller to say why; `photo`: which of several photos sent together (0 first)."""

    REASON = "no dog found in this photo"

    def __init__(self, reason: str = REASON, *, seems: list | tuple = (), source: str | None = None,
                 photo: int | None = None) -> None:
        super().__init__(reason, source=source)
        self.seems, self.photo = list(seems), photo


class NoSuchDog(InvalidInput):
    """The photo shows fewer dogs than the index asked for."""


class PhotoNotFound(NotFound):
    """The dog has no photo with that id."""


class LastPhoto(Conflict):
    """A dog's only photo cannot be removed on its own: deleting the dog removes it."""


class StoredDogConflict(Conflict):
    """Refused for a dog stored already: `dog_id`, that dog where the refusal names one, for a client to open."""

    def __init__(self, reason: str, *, dog_id: str | None = None, source: str | None = None) -> None:
        super().__init__(reason, source=source)
        self.dog_id = dog_id


class PhotoOfAnotherDog(StoredDogConflict):
    """That dog of that photo is stored as another dog already (a dog of a photo is one dog). `dog_id`: that other
    dog; None where the photo's other dog is this dog's photo already, or where the photo started several dogs."""


class PhotoStoredAlready(StoredDogConflict):
    """That dog of that photo is stored already, with other values of fields sent to add it (or it is another key's
    dog, and lacks some): adding the photo again stores no second dog, and changes no value of a stored one nor
    another key's dog, so those fields would be lost. `dog_id`: the stored dog."""
