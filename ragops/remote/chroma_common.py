"""What the Chroma host scripts share (a piece: ``ragops.remote.NEEDS`` ships it in front of
``chroma_inspect``, ``chroma_record`` and ``chroma_selfcheck``, so there is one copy): the metadata keys naming a
collection's embedding model, the torn-copy test on segment files, the argv parser
(positional words, ``--name value`` options) and a collection's space read from its sqlite rows."""

import json
import os

MODEL_KEYS = ("embedding_model", "embedding_model_name", "model", "model_name")


def find_sparse_files(path, min_size=16 << 20):
    """Files whose apparent size is mostly holes. HNSW segment files are written densely; a copy
    taken while the writer extends one can come out as a huge sparse file (seen: 711 GB apparent,
    108 KB allocated), which passes the index checks but is no backup. Such a copy is torn."""
    bad = []
    for d, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(d, name))
            if st.st_size > min_size and st.st_blocks * 512 * 2 < st.st_size:
                bad.append("%s: %d bytes apparent, %d allocated" % (os.path.relpath(os.path.join(d, name), path),
                                                                     st.st_size, st.st_blocks * 512))
    return bad


def parse(argv):
    """(positional words, {option: value}) of ``ARGS [--name value ...]``."""
    pos, opts = [], {}
    it = iter(argv)
    for a in it:
        if a.startswith("--"):
            opts[a[2:]] = next(it)
        else:
            pos.append(a)
    return pos, opts


def read_stored_metric(meta, config_text, schema_text=None):
    """The collection's space: metadata ``hnsw:space`` (0.x), the configuration's hnsw/spann space,
    or (chromadb >= 1.1, a collection made with ``configuration=``) the schema's vector index space."""
    for text, path in ((config_text, ("hnsw", "space")), (config_text, ("spann", "space")),
                       (schema_text, ("keys", "#embedding", "float_list", "vector_index", "config", "space"))):
        try:
            node = json.loads(text or "{}")
            for key in path:
                node = node[key]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(node, str) and not meta.get("hnsw:space"):
            return node
    return meta.get("hnsw:space") or "l2"
