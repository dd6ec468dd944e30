#!/usr/bin/env python3
"""Independent reference for Orcinus' GGUF tests: the `gguf` package's GGUFReader and
gguf.quants.dequantize.

    gguf_ref.py describe FILE   -> JSON on stdout: version, metadata, tensors with the sha256 of
                                   each tensor dequantized to little-endian float32 (GGUF order)
"""
import hashlib
import json
import math
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize


def jsonable(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else repr(v)
    if isinstance(v, (bytes, bytearray)):
        return list(v)
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.generic,)):
        return jsonable(v.item())
    return v


def describe(path):
    r = GGUFReader(path)
    meta = []
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            continue
        meta.append({"key": name, "type": [int(t) for t in field.types], "value": jsonable(field.contents())})
    tensors = []
    for t in r.tensors:
        deq = dequantize(t.data, t.tensor_type).astype("<f4", copy=False)
        deq = np.ascontiguousarray(deq)
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "ne": [int(d) for d in t.shape],
            "offset": int(t.data_offset),
            "bytes": int(t.n_bytes),
            "sha256": hashlib.sha256(deq.tobytes()).hexdigest(),
            "n": int(deq.size),
        })
    version = int(r.fields["GGUF.version"].contents())
    json.dump({"version": version, "metadata": meta, "tensors": tensors}, sys.stdout)


def npy_check(path, name, npy):
    """Checks that NPY (written by `orcinus tensor`) equals gguf's dequantization of NAME,
    reshaped as numpy users get it (shape = reversed GGUF ne), bit for bit."""
    r = GGUFReader(path)
    t = next(t for t in r.tensors if t.name == name)
    ref = dequantize(t.data, t.tensor_type).astype("<f4")
    ref = ref.reshape(tuple(int(d) for d in reversed(t.shape)))
    ours = np.load(npy)
    assert ours.dtype == np.dtype("<f4"), ours.dtype
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    assert np.array_equal(ours.view(np.uint32), ref.view(np.uint32)), "values differ"
    print(json.dumps({"ok": True, "shape": list(ours.shape)}))


if __name__ == "__main__":
    cmd, path = sys.argv[1:3]
    if cmd == "describe":
        describe(path)
    elif cmd == "npy-check":
        npy_check(path, sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {cmd}")
