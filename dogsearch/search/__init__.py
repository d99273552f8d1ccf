"""The vector store: one contract (contract.py: VectorStore, Engine, the types and errors), filters read once
(filters.py), what the engines share (base.py), and the two engines: the embedded qdrant-edge (edge.py) and a Qdrant
server through qdrant-client (qdrant.py); engine.py picks one from plain arguments. Imports only dogsearch.core."""
