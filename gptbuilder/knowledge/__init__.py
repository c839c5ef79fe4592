"""A GPT's knowledge: loaders, chunking, embeddings, the hybrid index and the retriever.

Submodules import their heavy libraries (pypdf, chromadb, sentence-transformers) only when used.
"""
