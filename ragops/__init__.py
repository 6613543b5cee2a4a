"""ragops: the maintenance toolkit for a production RAG system.

Importing this package must stay cheap: heavy optional dependencies (chromadb,
boto3, docker, kubernetes, numpy) are imported lazily inside the steps that use them.
"""

__version__ = "0.1.0"
