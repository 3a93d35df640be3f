"""Adds the training data's feature distribution to a model's metadata: the
drift reference of docs/specs/model-registry.md §4.

Regenerates the exact training data the metadata names (same exporter, same
seeds, same days; the SHA-256 must match `training.data_sha256`, or nothing
is written), computes the training windows' normalised features, and stores
per feature the deciles as bin edges and the share of windows in each bin.
The ONNX file does not change. Run it through ./drift_reference.sh.

    python drift_reference.py --sim PATH/TO/dcmms-sim --model wind-turbine/wind-turbine-ae.json
"""

import argparse
import json
import os
import sys

import numpy as np

import train as T

NOTICE_PSI = 0.25
# A week of 10 s windows: the features follow the weather, so a shorter
# sample of one asset differs from the training data whatever its health.
MIN_WINDOWS = 60480


def reference(Z):
    """Per column: 9 strictly increasing edges (deciles) and 10 proportions."""
    edges, props = [], []
    for col in Z.T:
        e = np.quantile(col, np.linspace(0.1, 0.9, 9))
        # Ties (a feature stuck at one value) would repeat an edge.
        for i in range(1, len(e)):
            if e[i] <= e[i - 1]:
                e[i] = e[i - 1] + 1e-6
        # The edge's own bin is the one above it (Rust: partition_point(e <= z)).
        counts = np.bincount(np.searchsorted(e, col, side="right"), minlength=10)
        edges.append([float(x) for x in e])
        props.append([float(c) / len(col) for c in counts])
    return edges, props


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim", required=True, help="path of the dcmms-sim binary")
    ap.add_argument("--model", required=True, help="the model's metadata (.json)")
    a = ap.parse_args()
    with open(a.model) as f:
        meta = json.load(f)
    tr = meta["training"]
    if meta["asset_class"] != "wind_turbine":
        sys.exit(f"{a.model}: only wind_turbine models are supported here")
    if tr.get("days_per_seed") != T.DAYS or meta["window"] != T.WINDOW:
        sys.exit(f"{a.model}: days or window differ from train.py's; retrain instead")
    os.makedirs(T.DATA, exist_ok=True)
    paths, X, _ = T.dataset(a.sim, tr["seeds"], meta["params"])
    sha = T.sha256_of(paths)
    if sha != tr["data_sha256"]:
        sys.exit(f"{a.model}: the regenerated training data's SHA-256 is {sha}, "
                 f"the model was trained on {tr['data_sha256']}: not the same data")
    mean = np.array([f["mean"] for f in meta["features"]])
    std = np.array([f["std"] for f in meta["features"]])
    edges, props = reference((X - mean) / std)
    meta["drift"] = {"edges": edges, "reference": props,
                     "notice_psi": NOTICE_PSI, "min_windows": MIN_WINDOWS}
    with open(a.model, "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{a.model}: drift reference from {len(X)} training windows written")


if __name__ == "__main__":
    main()
