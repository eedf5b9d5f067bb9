"""Candidate sources: BM25, dense (faiss) and hybrid (fused), behind one :class:`Retriever` protocol."""

from .base import Retriever
from .bm25 import BM25Retriever
from .dense import DenseRetriever
from .hybrid import HybridRetriever

__all__ = ["Retriever", "BM25Retriever", "DenseRetriever", "HybridRetriever"]
