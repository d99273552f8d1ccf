"""The gallery: the domain of dogsearch. Dogs and their fields, their photos, adding photos (one at a time or in
bulk), the vector space they are searched in, and the errors of all that. It knows no HTTP: it reaches the
embedder and the vector index through the Protocols in contracts.py, which the services' HTTP clients implement
(over the network, or in-process)."""
