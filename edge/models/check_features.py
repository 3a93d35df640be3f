"""Checks that features.py still computes what the committed fixtures hold
(edge/tests/fixtures/{wind,pv,bess}_features_expected.csv, which the Rust tests
compare with edge/src/anomaly/features.rs) and that the committed models'
metadata match features.py's feature tables. Exit 0 when equal.

    python check_features.py
"""

import json
import os
import sys

import numpy as np

import features as F

HERE = os.path.dirname(os.path.abspath(__file__))
FX = os.path.join(HERE, "..", "tests", "fixtures")


def check_pv_fixture(problems):
    with open(os.path.join(FX, "pv_features_params.json")) as f:
        meta = json.load(f)
    params, window = meta["params"], meta["window"]
    rows = np.loadtxt(os.path.join(FX, "pv_features_input.csv"), delimiter=",", skiprows=1)
    expected = np.loadtxt(os.path.join(FX, "pv_features_expected.csv"), delimiter=",", skiprows=1)
    got = []
    for end in range(window["length"] - 1, len(rows), window["step"]):
        v = F.pv_features(rows[end - window["length"] + 1 : end + 1, 1:], params)
        if v is not None:
            got.append([rows[end, 0]] + list(v))
    got = np.array(got)
    if got.shape != expected.shape:
        problems.append(f"pv: {got.shape[0]} windows, fixture has {expected.shape[0]}")
    elif not np.allclose(got, expected, rtol=1e-9, atol=1e-9):
        i, j = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
        problems.append(f"pv: window {i} column {j}: python {got[i, j]!r}, fixture {expected[i, j]!r}")
    return len(got)


def check_bess_fixture(problems):
    with open(os.path.join(FX, "bess_features_params.json")) as f:
        meta = json.load(f)
    params, window = meta["params"], meta["window"]
    rows = np.loadtxt(os.path.join(FX, "bess_features_input.csv"), delimiter=",", skiprows=1)
    expected = np.loadtxt(os.path.join(FX, "bess_features_expected.csv"), delimiter=",", skiprows=1)
    got = []
    for end in range(window["length"] - 1, len(rows), window["step"]):
        v = F.bess_features(rows[end - window["length"] + 1 : end + 1, 1:], params)
        if v is not None:
            got.append([rows[end, 0]] + list(v))
    got = np.array(got)
    if got.shape != expected.shape:
        problems.append(f"bess: {got.shape[0]} windows, fixture has {expected.shape[0]}")
    elif not np.allclose(got, expected, rtol=1e-9, atol=1e-9):
        i, j = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
        problems.append(f"bess: window {i} column {j}: python {got[i, j]!r}, fixture {expected[i, j]!r}")
    with open(os.path.join(HERE, "bess-rack", "bess-rack-ae.json")) as f:
        model = json.load(f)
    table = [(x["name"], x["unit"], x["template"], x["decimals"]) for x in model["features"]]
    if table != [tuple(t) for t in F.BESS_FEATURES]:
        problems.append("bess-rack-ae.json features differ from features.BESS_FEATURES: retrain")
    if [(r["role"], r["unit"]) for r in model["roles"]] != F.BESS_ROLES:
        problems.append("bess-rack-ae.json roles differ from features.BESS_ROLES: retrain")
    return len(got)


def main():
    with open(os.path.join(FX, "wind_features_params.json")) as f:
        meta = json.load(f)
    params, window = meta["params"], meta["window"]
    rows = np.loadtxt(os.path.join(FX, "wind_features_input.csv"), delimiter=",", skiprows=1)
    expected = np.loadtxt(os.path.join(FX, "wind_features_expected.csv"), delimiter=",", skiprows=1)
    got = []
    for end in range(window["length"] - 1, len(rows), window["step"]):
        w = rows[end - window["length"] + 1 : end + 1, 1:]
        if F.wind_scoreable(w):
            got.append([rows[end, 0]] + list(F.wind_features(w, params)))
    got = np.array(got)
    problems = []
    if got.shape != expected.shape:
        problems.append(f"{got.shape[0]} windows, fixture has {expected.shape[0]}")
    elif not np.allclose(got, expected, rtol=1e-9, atol=1e-9):
        i, j = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
        problems.append(f"window {i} column {j}: python {got[i, j]!r}, fixture {expected[i, j]!r}")
    with open(os.path.join(HERE, "wind-turbine", "wind-turbine-ae.json")) as f:
        model = json.load(f)
    table = [(x["name"], x["unit"], x["template"], x["decimals"]) for x in model["features"]]
    if table != [tuple(t) for t in F.WIND_FEATURES]:
        problems.append("wind-turbine-ae.json features differ from features.WIND_FEATURES: retrain")
    if [(r["role"], r["unit"]) for r in model["roles"]] != F.WIND_ROLES:
        problems.append("wind-turbine-ae.json roles differ from features.WIND_ROLES: retrain")
    pv_windows = check_pv_fixture(problems)
    with open(os.path.join(HERE, "pv-inverter", "pv-inverter-ae.json")) as f:
        model = json.load(f)
    table = [(x["name"], x["unit"], x["template"], x["decimals"]) for x in model["features"]]
    if table != [tuple(t) for t in F.PV_FEATURES]:
        problems.append("pv-inverter-ae.json features differ from features.PV_FEATURES: retrain")
    if [(r["role"], r["unit"]) for r in model["roles"]] != F.PV_ROLES:
        problems.append("pv-inverter-ae.json roles differ from features.PV_ROLES: retrain")
    bess_windows = check_bess_fixture(problems)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{len(got)} wind, {pv_windows} pv and {bess_windows} bess windows checked" if not problems else "MISMATCH")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
