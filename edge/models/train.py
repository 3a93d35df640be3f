"""Trains the anomaly autoencoders: wind turbine (docs/models/wind-turbine.md),
PV inverter (docs/models/pv-inverter.md) and BESS rack
(docs/models/bess-rack.md).

Reproducible: fixed seeds for the simulator data and for the network. Run it
through ./train.sh, which builds the exporter and the venv first.

    python train.py --sim PATH/TO/dcmms-sim [--asset-class wind|pv|bess|all]

Writes wind-turbine/wind-turbine-ae.{onnx,json},
pv-inverter/pv-inverter-ae.{onnx,json} and bess-rack/bess-rack-ae.{onnx,json}
(metadata as in docs/specs/anomaly-models.md), and the parity fixtures
edge/tests/fixtures/{wind,pv,bess}_features_*.csv and *_model_expected.csv.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
from sklearn.neural_network import MLPRegressor
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType

import features as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(HERE, ".data")

TRAIN_SEEDS = list(range(1, 9))  # eval uses seeds >= 1000
VAL_SEEDS = [9, 10, 11, 12]
DAYS = 2
WINDOW = {"sample_period_ms": 1000, "length": 180, "step": 10}
# Clearing needs 30 minutes of low scores: a real fault does not heal in
# minutes, but its evidence can fade when the load drops.
RAISE_COUNT, CLEAR_COUNT = 3, 180
THRESHOLD_MARGIN = 1.5


def export(sim, seed, days, path, faults=(), asset_class="wind", extra=()):
    args = [sim, "dataset", "--asset-class", asset_class, "--seed", str(seed),
            "--days", str(days), "--out", path, *extra]
    for f in faults:
        args += ["--fault", f]
    subprocess.run(args, check=True, stderr=subprocess.DEVNULL)


def load_rows(path):
    # Columns 1..8 are the roles in order (dcmms_simulators::dataset).
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 9))


def sha256_of(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def dataset(sim, seeds, params):
    paths, feats, per_seed = [], [], []
    for s in seeds:
        p = os.path.join(DATA, f"wind-seed{s}-{DAYS}d.csv")
        export(sim, s, DAYS, p)
        paths.append(p)
        rows = load_rows(p)
        _, f, ok = F.wind_features_sliding(rows, params, WINDOW["length"], WINDOW["step"])
        # Windows the edge does not score (feathered rows) are not learnt.
        feats.append(f[ok])
        per_seed.append(f[ok])
    return paths, np.vstack(feats), per_seed


def scores_of(model, z, rms):
    rec = model.predict(z)
    return (((z - rec) / rms) ** 2).mean(axis=1)


def write_fixture(sim, params):
    fx = os.path.join(REPO, "edge", "tests", "fixtures")
    os.makedirs(fx, exist_ok=True)
    tmp = os.path.join(DATA, "fixture.csv")
    # 15 minutes with a gearbox fault from minute 5: features move.
    export(sim, 1, 15 / 1440, tmp, faults=["gearbox_overheat@300"])
    with open(tmp) as f:
        lines = f.read().splitlines()
    header = lines[0].split(",")
    keep = [0] + list(range(1, 9))
    with open(os.path.join(fx, "wind_features_input.csv"), "w") as f:
        for line in lines:
            cols = line.split(",")
            f.write(",".join(cols[i] for i in keep) + "\n")
    rows = load_rows(tmp)
    ts = np.loadtxt(tmp, delimiter=",", skiprows=1, usecols=[0], dtype=np.int64)
    with open(os.path.join(fx, "wind_features_expected.csv"), "w") as f:
        f.write("end_ts_ms," + ",".join(n for n, *_ in F.WIND_FEATURES) + "\n")
        for end in range(WINDOW["length"] - 1, len(rows), WINDOW["step"]):
            w = rows[end - WINDOW["length"] + 1 : end + 1]
            if not F.wind_scoreable(w):
                continue
            v = F.wind_features(w, params)
            f.write(str(ts[end]) + "," + ",".join(repr(float(x)) for x in v) + "\n")
    with open(os.path.join(fx, "wind_features_params.json"), "w") as f:
        json.dump({"params": params, "window": WINDOW, "header": header[:9]}, f, indent=1)


def write_onnx(model, n, graph_name, path):
    """Exports the MLP with input and output [1, n] (spec §1)."""
    onx = convert_sklearn(
        model, initial_types=[("z", FloatTensorType([1, n]))],
        target_opset={"": 13},
    )
    # skl2onnx ends an MLPRegressor with Reshape to [-1, 1] whatever the
    # number of outputs; the spec wants [1, F].
    import onnx
    from onnx import numpy_helper
    for init in onx.graph.initializer:
        if init.name == "shape_tensor":
            init.CopyFrom(numpy_helper.from_array(np.array([1, n], dtype=np.int64), "shape_tensor"))
    out_dims = onx.graph.output[0].type.tensor_type.shape.dim
    out_dims[0].dim_value, out_dims[1].dim_value = 1, n
    onx.graph.name = graph_name  # skl2onnx picks a random one
    onnx.checker.check_model(onx)
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())


def train_wind(sim, out):
    os.makedirs(out, exist_ok=True)
    params = {"rated_kw": 3000.0, "power_curve": F.wind_power_curve()}

    write_fixture(sim, params)
    train_paths, X, _ = dataset(sim, TRAIN_SEEDS, params)
    data_sha = sha256_of(train_paths)
    _, Xv, val_seqs = dataset(sim, VAL_SEEDS, params)
    mean, std = X.mean(axis=0), X.std(axis=0)
    std = np.where(std < 1e-6, 1.0, std)
    Z = (X - mean) / std
    model = MLPRegressor(
        hidden_layer_sizes=(32, 4, 32), activation="tanh", alpha=1e-4,
        learning_rate_init=1e-3, max_iter=300, batch_size=256,
        early_stopping=True, n_iter_no_change=15, random_state=0,
    )
    model.fit(Z.astype(np.float32), Z.astype(np.float32))
    # Each feature's reconstruction error in units of its own error scale
    # on the training data, so a feature the network reproduces tightly (a
    # temperature rise) weighs as much as a noisy one (power). The scale is
    # taken from the tail (99.99th percentile of |error| / 3.89, a normal
    # sigma's equivalent), not the RMS: power errors are heavy-tailed (the
    # anemometer can read high for minutes) and an RMS scale would let
    # those rare windows set the threshold.
    rms = np.quantile(np.abs(Z - model.predict(Z)), 0.9999, axis=0) / 3.89
    train_scores = scores_of(model, Z, rms)
    # Threshold from fault-free validation data: the highest score that
    # RAISE_COUNT consecutive windows exceed together, times a margin.
    sustained = []
    val_scores = []
    for f in val_seqs:
        s = scores_of(model, (f - mean) / std, rms)
        val_scores.append(s)
        run_min = np.min(np.stack([s[i : len(s) - RAISE_COUNT + 1 + i] for i in range(RAISE_COUNT)]), axis=0)
        sustained.append(run_min.max())
    val_scores = np.concatenate(val_scores)
    raise_level = float(THRESHOLD_MARGIN * max(sustained))
    clear_level = 0.5 * raise_level

    onnx_path = os.path.join(out, "wind-turbine-ae.onnx")
    write_onnx(model, X.shape[1], "wind_turbine_ae", onnx_path)
    meta = {
        "format": "dcmms-anomaly-model/1",
        "model_id": "wind-turbine-ae",
        "version": "1.0.0",
        "asset_class": "wind_turbine",
        "feature_set": "wind_turbine/1",
        "onnx_sha256": sha256_of([onnx_path]),
        "roles": [{"role": r, "unit": u} for r, u in F.WIND_ROLES],
        "params": params,
        "window": WINDOW,
        "features": [
            {"name": n, "unit": u, "mean": float(m), "std": float(s), "error_scale": float(r),
             "template": t, "decimals": d}
            for (n, u, t, d), m, s, r in zip(F.WIND_FEATURES, mean, std, rms)
        ],
        "score": {"raise": raise_level, "clear": clear_level,
                  "raise_count": RAISE_COUNT, "clear_count": CLEAR_COUNT},
        "training": {
            "data_sha256": data_sha,
            "generator": f"dcmms-sim dataset --asset-class wind --days {DAYS} --seed S (S in {TRAIN_SEEDS}); files concatenated in seed order",
            "seeds": TRAIN_SEEDS,
            "validation_seeds": VAL_SEEDS,
            "days_per_seed": DAYS,
            "windows": int(X.shape[0]),
            "network": "sklearn MLPRegressor (32, 4, 32) tanh, identity target",
        },
    }
    with open(os.path.join(out, "wind-turbine-ae.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    # What sklearn itself predicts for a few inputs: the Rust test runs the
    # ONNX file through tract and compares (export parity).
    fx = os.path.join(REPO, "edge", "tests", "fixtures", "wind_model_expected.csv")
    rng = np.random.default_rng(0)
    probe = np.vstack([Z[rng.integers(0, len(Z), 6)], rng.normal(0, 2, (4, Z.shape[1]))]).astype(np.float32)
    pred = model.predict(probe)
    with open(fx, "w") as f:
        f.write("# 8 inputs (normalised features) then 8 sklearn outputs per line\n")
        for zi, pi in zip(probe, pred):
            f.write(",".join(repr(float(v)) for v in list(zi) + list(pi)) + "\n")
    q = lambda s, p: float(np.quantile(s, p))
    print(f"training windows {X.shape[0]}, validation windows {Xv.shape[0]}, epochs {model.n_iter_}")
    print(f"train score p50 {q(train_scores, .5):.4f} p99 {q(train_scores, .99):.4f} max {train_scores.max():.4f}")
    print(f"validation score p50 {q(val_scores, .5):.4f} p99 {q(val_scores, .99):.4f} max {val_scores.max():.4f}")
    print(f"raise {raise_level:.4f} clear {clear_level:.4f} (sustained max {max(sustained):.4f} x {THRESHOLD_MARGIN})")
    print(f"training data sha256 {data_sha}")


# ---------------------------------------------------------------------------
# PV inverter (docs/models/pv-inverter.md), feature set pv_inverter/1.

# Inverter 0 of fleet seed S (dcmms-sim dataset --asset-class pv): every seed
# is another inverter (DC/AC ratio, soiling, losses) under other weather.
# Evaluation (dcmms-eval-anomaly) uses seeds >= 5000.
PV_TRAIN_SEEDS = list(range(1, 193))
PV_VAL_SEEDS = list(range(193, 217))
# The first day fills the 24-hour window; windows are scored on the second.
PV_DAYS = 2
PV_STEP_MS = 60_000
PV_WINDOW = {"sample_period_ms": PV_STEP_MS, "length": 1440, "step": 1}
# Raise after 3 windows (minutes) in a row; clear after 30 minutes.
PV_RAISE_COUNT, PV_CLEAR_COUNT = 3, 30
PV_RATED_W = 100_000.0
# Floors, in the features' units: the smallest deviation the model may treat
# as meaningful. The simulator's PV signals carry no measurement noise (the
# healthy DC performance of an inverter is constant to 0.01 %), so scales
# learnt from its data alone would be hair triggers on any real plant.
# Each feature's normalisation std and error scale are at least its floor,
# and a window raises only when its score exceeds what one feature alone
# 3 floors off gives (9 / F).
PV_FLOORS = {
    "load_mean": 2.0,         # % of rating: AC power measurement, cloud timing
    "dc_performance": 1.0,    # %: irradiance sensor vs array
    "dc_change": 0.5,         # %: day-to-day stability of the ratio
    "efficiency": 0.2,        # %: DC and AC power measurements
    "heatsink_excess": 0.25,  # °C: sensor and airflow
}
# Denoising: inputs perturbed by N(0, (0.5 floor)^2), target the clean
# features, so a deviation below its floor in one feature does not move the
# reconstruction of the others.
PV_INPUT_NOISE = 0.5


def pv_start(index, count, offset_days=0):
    """Start dates spread over 2026 so every season is in the data."""
    day = int(index * 365 / count + offset_days) % 365
    t = np.datetime64("2026-01-01") + np.timedelta64(day, "D")
    return f"{t}T00:00:00Z"


def pv_export(sim, seed, days, start, path, faults=()):
    export(sim, seed, days, path, faults=faults, asset_class="pv",
           extra=["--step-ms", str(PV_STEP_MS), "--start", start])


def pv_load_rows(path):
    # Roles of pv_inverter/1 from the exporter's columns (PV_HEADER):
    # poa_irradiance, ambient_temp, module_temp, dc_power, ac_power,
    # heatsink_temp.
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=[1, 2, 3, 4, 7, 8], ndmin=2)


def pv_csvs(sim, seeds, offset_days):
    paths = []
    for i, s in enumerate(seeds):
        start = pv_start(i, len(seeds), offset_days)
        p = os.path.join(DATA, f"pv-seed{s}-{start[:10]}-{PV_DAYS}d.csv")
        pv_export(sim, s, PV_DAYS, start, p)
        paths.append(p)
    return paths


def pv_fit_heatsink(paths):
    """Heat-sink rise over ambient = a + b × load, least squares over every
    training row (the inverter's thermal curve, as a commissioning test would
    measure it); rounded to 0.001 °C."""
    rise, load = [], []
    for p in paths:
        r = pv_load_rows(p)
        rise.append(r[:, 5] - r[:, 1])
        load.append(r[:, 4] / PV_RATED_W)
    rise, load = np.concatenate(rise), np.concatenate(load)
    a, b = np.linalg.lstsq(np.stack([np.ones_like(load), load], axis=1), rise, rcond=None)[0]
    return round(float(a), 3), round(float(b), 3)


def pv_features_of(paths, params):
    per = []
    for p in paths:
        _, f, ok = F.pv_features_sliding(pv_load_rows(p), params, PV_WINDOW["length"], PV_WINDOW["step"])
        per.append(f[ok])  # declined windows (night, no baseline) are not learnt
    return per


# The parity fixture's parameters: the trained model's, except that more
# rows count as clipped, so that wholly clipped recent parts occur.
PV_FIXTURE_PARAMS = {
    "rated_ac_w": PV_RATED_W, "dc_capacity_w": 1.2 * PV_RATED_W, "power_temp_coeff": -0.004,
    "heatsink_rise_idle_c": 2.0, "heatsink_rise_per_load_c": 30.0, "daylight_poa": 100.0,
    "clip_fraction": 0.9, "recent_rows": 10, "min_baseline_rows": 60,
}


def write_pv_fixture(sim):
    """A June noon to the next evening of one inverter with an insulation
    fault (trips at dawn), a string outage and a failing fan, clipping at
    noon; windows of 15 hours every 5 rows, so night, dusk, dawn trips,
    clipped rows and both faults all pass through the features."""
    fx = os.path.join(REPO, "edge", "tests", "fixtures")
    os.makedirs(fx, exist_ok=True)
    tmp = os.path.join(DATA, "pv-fixture.csv")
    pv_export(sim, 3, 1.3, "2026-06-09T08:00:00Z", tmp,
              faults=["insulation_fault@0", "string_outage@77400", "failing_fan@90000"])
    window = {"sample_period_ms": PV_STEP_MS, "length": 900, "step": 5}
    params = PV_FIXTURE_PARAMS
    rows = pv_load_rows(tmp)
    ts = np.loadtxt(tmp, delimiter=",", skiprows=1, usecols=[0], dtype=np.int64)
    with open(tmp) as f:
        header = f.readline().strip().split(",")
    cols = [0, 1, 2, 3, 4, 7, 8]
    with open(os.path.join(fx, "pv_features_input.csv"), "w") as f:
        f.write(",".join(header[i] for i in cols) + "\n")
        for t, r in zip(ts, rows):
            f.write(str(t) + "," + ",".join(repr(float(v)) for v in r) + "\n")
    scored = declined = 0
    with open(os.path.join(fx, "pv_features_expected.csv"), "w") as f:
        f.write("end_ts_ms," + ",".join(n for n, *_ in F.PV_FEATURES) + "\n")
        for end in range(window["length"] - 1, len(rows), window["step"]):
            v = F.pv_features(rows[end - window["length"] + 1 : end + 1], params)
            if v is None:
                declined += 1
                continue
            scored += 1
            f.write(str(ts[end]) + "," + ",".join(repr(float(x)) for x in v) + "\n")
    with open(os.path.join(fx, "pv_features_params.json"), "w") as f:
        json.dump({"params": params, "window": window, "header": [header[i] for i in cols]}, f, indent=1)
    print(f"pv fixture: {len(rows)} rows, {scored} windows scored, {declined} declined")


def train_pv(sim, out):
    os.makedirs(out, exist_ok=True)
    write_pv_fixture(sim)
    names = [n for n, *_ in F.PV_FEATURES]
    floors = np.array([PV_FLOORS[n] for n in names])
    train_paths = pv_csvs(sim, PV_TRAIN_SEEDS, 0)
    val_paths = pv_csvs(sim, PV_VAL_SEEDS, 7)
    data_sha = sha256_of(train_paths)
    idle, per_load = pv_fit_heatsink(train_paths)
    params = {
        "rated_ac_w": PV_RATED_W,
        "dc_capacity_w": 1.2 * PV_RATED_W,  # the fleet's design DC/AC ratio
        "power_temp_coeff": -0.004,         # module datasheet
        "heatsink_rise_idle_c": idle,
        "heatsink_rise_per_load_c": per_load,
        "daylight_poa": 100.0,
        "clip_fraction": 0.98,
        "recent_rows": 10,
        "min_baseline_rows": 60,
    }
    X = np.vstack(pv_features_of(train_paths, params))
    val_seqs = pv_features_of(val_paths, params)
    Xv = np.vstack(val_seqs)
    mean = X.mean(axis=0)
    std = np.maximum(X.std(axis=0), floors)
    Z = (X - mean) / std
    rng = np.random.default_rng(0)
    Zn = Z + rng.normal(0.0, 1.0, Z.shape) * (PV_INPUT_NOISE * floors / std)
    model = MLPRegressor(
        hidden_layer_sizes=(32, 4, 32), activation="tanh", alpha=1e-4,
        learning_rate_init=1e-3, max_iter=300, batch_size=256,
        early_stopping=True, n_iter_no_change=15, random_state=0,
    )
    model.fit(Zn.astype(np.float32), Z.astype(np.float32))
    learnt = np.quantile(np.abs(Z - model.predict(Z)), 0.9999, axis=0) / 3.89
    scale = np.maximum(learnt, floors / std)
    train_scores = scores_of(model, Z, scale)
    sustained, val_scores = [], []
    for f in val_seqs:
        s = scores_of(model, (f - mean) / std, scale)
        val_scores.append(s)
        run_min = np.min(np.stack([s[i : len(s) - PV_RAISE_COUNT + 1 + i] for i in range(PV_RAISE_COUNT)]), axis=0)
        sustained.append(run_min.max())
    val_scores = np.concatenate(val_scores)
    floor_level = 9.0 / len(names)
    raise_level = float(max(THRESHOLD_MARGIN * max(sustained), floor_level))
    clear_level = 0.5 * raise_level

    onnx_path = os.path.join(out, "pv-inverter-ae.onnx")
    write_onnx(model, X.shape[1], "pv_inverter_ae", onnx_path)
    meta = {
        "format": "dcmms-anomaly-model/1",
        "model_id": "pv-inverter-ae",
        "version": "1.0.0",
        "asset_class": "pv_inverter",
        "feature_set": "pv_inverter/1",
        "onnx_sha256": sha256_of([onnx_path]),
        "roles": [{"role": r, "unit": u} for r, u in F.PV_ROLES],
        "params": params,
        "window": PV_WINDOW,
        "features": [
            {"name": n, "unit": u, "mean": float(m), "std": float(s), "error_scale": float(r),
             "template": t, "decimals": d}
            for (n, u, t, d), m, s, r in zip(F.PV_FEATURES, mean, std, scale)
        ],
        "score": {"raise": raise_level, "clear": clear_level,
                  "raise_count": PV_RAISE_COUNT, "clear_count": PV_CLEAR_COUNT},
        "training": {
            "data_sha256": data_sha,
            "generator": (f"dcmms-sim dataset --asset-class pv --days {PV_DAYS} --step-ms {PV_STEP_MS}"
                          f" --seed S --start D (S in {PV_TRAIN_SEEDS[0]}..{PV_TRAIN_SEEDS[-1]},"
                          f" D spread over 2026: train.py pv_start); files concatenated in seed order"),
            "seeds": PV_TRAIN_SEEDS,
            "validation_seeds": PV_VAL_SEEDS,
            "days_per_seed": PV_DAYS,
            "windows": int(X.shape[0]),
            "network": "sklearn MLPRegressor (32, 4, 32) tanh, denoising (input noise 0.5 x floor), clean target",
            "floors": PV_FLOORS,
            "learnt_error_scale": {n: float(v * s) for n, v, s in zip(names, learnt, std)},
            "raise_floor": floor_level,
            "validation_sustained_max": float(max(sustained)),
        },
    }
    with open(os.path.join(out, "pv-inverter-ae.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    fx = os.path.join(REPO, "edge", "tests", "fixtures", "pv_model_expected.csv")
    probe = np.vstack([Z[rng.integers(0, len(Z), 6)], rng.normal(0, 2, (4, Z.shape[1]))]).astype(np.float32)
    pred = model.predict(probe)
    n = Z.shape[1]
    with open(fx, "w") as f:
        f.write(f"# {n} inputs (normalised features) then {n} sklearn outputs per line\n")
        for zi, pi in zip(probe, pred):
            f.write(",".join(repr(float(v)) for v in list(zi) + list(pi)) + "\n")
    q = lambda s, p: float(np.quantile(s, p))
    print(f"pv: training windows {X.shape[0]}, validation windows {Xv.shape[0]}, epochs {model.n_iter_}")
    print(f"pv: heat-sink rise {idle} + {per_load} x load °C")
    print("pv: std " + ", ".join(f"{n} {s:.4g}" for n, s in zip(names, std)))
    print("pv: learnt error scale " + ", ".join(f"{n} {v * s:.4g}" for n, v, s in zip(names, learnt, std)))
    print(f"pv: train score p50 {q(train_scores, .5):.4f} p99 {q(train_scores, .99):.4f} max {train_scores.max():.4f}")
    print(f"pv: validation score p50 {q(val_scores, .5):.4f} p99 {q(val_scores, .99):.4f} max {val_scores.max():.4f}")
    print(f"pv: raise {raise_level:.4f} clear {clear_level:.4f} (sustained validation max {max(sustained):.4f} x {THRESHOLD_MARGIN}, floor {floor_level:.4f})")
    print(f"pv: training data sha256 {data_sha}")



# ---------------------------------------------------------------------------
# BESS rack (bess_rack/1, docs/models/bess-rack.md)

# The rack of seed S (dcmms-sim dataset --asset-class bess): every seed is
# another rack (cell spread, module cooling, HVAC offset) with its own daily
# dispatch. Evaluation (dcmms-eval-anomaly --asset-class bess) uses seeds
# >= 5000.
BESS_TRAIN_SEEDS = list(range(1, 41))
BESS_VAL_SEEDS = list(range(41, 51))
BESS_DAYS = 3
BESS_STEP_MS = 10_000
BESS_WINDOW = {"sample_period_ms": BESS_STEP_MS, "length": 180, "step": 6}
BESS_RECENT_ROWS = 6
BESS_RAISE_COUNT, BESS_CLEAR_COUNT = 3, 30
# Floors, in the features' units (see PV_FLOORS): the simulated BMS reads
# are exact up to rounding (1 mV, 0.1 °C), so learnt scales alone would be
# hair triggers on a real rack.
# Operating-point inputs: scored, listed in the explanation, never the
# summary (docs/specs/anomaly-models.md §2).
BESS_CONTEXT = ("current_rms", "soc_mean")
BESS_FLOORS = {
    "current_rms": 5.0,     # A: current sensor, dispatch ripple
    "soc_mean": 2.0,        # %: coulomb-counting drift
    "spread_excess": 4.0,   # mV: cell voltage sensing, relaxation after current
    "rise_excess": 0.3,     # °C: sensor, airflow changes in the container
    "temp_spread": 0.3,     # °C: sensor offsets, air path
}
BESS_INPUT_NOISE = 0.5


def bess_load_rows(path):
    # The roles of bess_rack/1 are columns 1..7 of BESS_HEADER.
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 8), ndmin=2)


def bess_csvs(sim, seeds, offset_days):
    paths = []
    for i, s in enumerate(seeds):
        start = pv_start(i, len(seeds), offset_days)
        p = os.path.join(DATA, f"bess-seed{s}-{start[:10]}-{BESS_DAYS}d.csv")
        export(sim, s, BESS_DAYS, p, asset_class="bess",
               extra=["--step-ms", str(BESS_STEP_MS), "--start", start])
        paths.append(p)
    return paths


def bess_fit_spread(rows):
    """Healthy spread = curve(SoC) + b |I|: the curve piecewise linear on
    knots every 5 % SoC (those with 50 rows or more within 5 %), fitted
    jointly with b by least squares over every training row. Rounded to
    0.01 mV and 0.0001 mV/A."""
    cur, soc = rows[:, 0], rows[:, 1]
    spread = 1000.0 * (rows[:, 2] - rows[:, 3])
    knots = [k for k in np.arange(0.0, 100.01, 5.0) if np.sum(np.abs(soc - k) < 5.0) >= 50]
    knots = np.array(knots)
    hats = np.stack([np.interp(soc, knots, np.eye(len(knots))[i]) for i in range(len(knots))], axis=1)
    A = np.hstack([hats, np.abs(cur)[:, None]])
    coef = np.linalg.lstsq(A, spread, rcond=None)[0]
    curve = [[float(k), round(float(v), 2)] for k, v in zip(knots, coef[:-1])]
    return curve, round(float(coef[-1]), 4)


def bess_fit_thermal(series):
    """Rise of the hottest cell over ambient against a first-order response
    to I^2: for each time constant on a grid (5 to 120 min), idle rise and
    rise per A^2 by least squares over every training row (each seed's run
    from its first row); the time constant of least squared error."""
    from scipy.signal import lfilter
    best = None
    for tau in np.arange(300.0, 7200.01, 60.0):
        a = 1.0 - np.exp(-BESS_STEP_MS / 1000.0 / tau)
        q = 1.0 - a
        cols, ys = [], []
        for rows in series:
            i2 = rows[:, 0] ** 2
            rise = rows[:, 4] - rows[:, 6]
            n = len(rows)
            qj = q ** np.arange(n)
            f = np.concatenate([[0.0], lfilter([a], [1.0, -q], i2)[:-1]])
            cols.append(np.stack([1.0 - qj, f], axis=1))
            ys.append(rise - qj * rise[0])
        A, y = np.vstack(cols), np.concatenate(ys)
        coef, res, *_ = np.linalg.lstsq(A, y, rcond=None)
        sse = float(np.sum((A @ coef - y) ** 2))
        if best is None or sse < best[0]:
            best = (sse, float(tau), float(coef[0]), float(coef[1]))
    _, tau, idle, k = best
    return tau, round(idle, 4), float(f"{k:.6g}")


# The parity fixture's parameters and window (not the trained model's): a
# shorter window and a faster thermal constant, so that every term moves.
BESS_FIXTURE_PARAMS = {
    "sample_period_s": 10.0, "recent_rows": 6,
    "spread_curve": [[10.0, 14.0], [20.0, 5.0], [60.0, 4.0], [90.0, 9.0], [95.0, 12.0]],
    "spread_per_amp_mv": 0.02, "thermal_tau_s": 1500.0, "rise_idle_c": 0.2,
    "rise_per_amp2_c": 0.0003,
}


def write_bess_fixture(sim):
    """Seed 3 from 08:00 local for a day: the midday charge, the evening
    discharge, with a weak cell from 10:00 and a cooling failure from 17:00
    local; windows of 60 rows every 5."""
    fx = os.path.join(REPO, "edge", "tests", "fixtures")
    tmp = os.path.join(DATA, "bess-fixture.csv")
    export(sim, 3, 1.0, tmp, asset_class="bess",
           faults=["cell_imbalance@7200", "hot_rack@32400"],
           extra=["--step-ms", str(BESS_STEP_MS), "--start", "2026-06-09T02:30:00Z"])
    window = {"sample_period_ms": BESS_STEP_MS, "length": 60, "step": 5}
    params = BESS_FIXTURE_PARAMS
    rows = bess_load_rows(tmp)
    ts = np.loadtxt(tmp, delimiter=",", skiprows=1, usecols=[0], dtype=np.int64)
    with open(tmp) as f:
        header = f.readline().strip().split(",")
    cols = list(range(0, 8))
    with open(os.path.join(fx, "bess_features_input.csv"), "w") as f:
        f.write(",".join(header[i] for i in cols) + "\n")
        for t, r in zip(ts, rows):
            f.write(str(t) + "," + ",".join(repr(float(v)) for v in r) + "\n")
    scored = 0
    with open(os.path.join(fx, "bess_features_expected.csv"), "w") as f:
        f.write("end_ts_ms," + ",".join(n for n, *_ in F.BESS_FEATURES) + "\n")
        for end in range(window["length"] - 1, len(rows), window["step"]):
            v = F.bess_features(rows[end - window["length"] + 1 : end + 1], params)
            if v is None:
                continue
            scored += 1
            f.write(str(ts[end]) + "," + ",".join(repr(float(x)) for x in v) + "\n")
    with open(os.path.join(fx, "bess_features_params.json"), "w") as f:
        json.dump({"params": params, "window": window, "header": [header[i] for i in cols]}, f, indent=1)
    # The fast sliding version used for training agrees with the direct one.
    ends, fs, _ = F.bess_features_sliding(rows, params, window["length"], window["step"])
    direct = np.array([F.bess_features(rows[e - window["length"] + 1 : e + 1], params) for e in ends])
    assert np.allclose(fs, direct, rtol=1e-9, atol=1e-9), np.abs(fs - direct).max()
    print(f"bess fixture: {len(rows)} rows, {scored} windows")


def train_bess(sim, out):
    os.makedirs(out, exist_ok=True)
    write_bess_fixture(sim)
    names = [n for n, *_ in F.BESS_FEATURES]
    floors = np.array([BESS_FLOORS[n] for n in names])
    train_paths = bess_csvs(sim, BESS_TRAIN_SEEDS, 0)
    val_paths = bess_csvs(sim, BESS_VAL_SEEDS, 11)
    data_sha = sha256_of(train_paths)
    train_rows = [bess_load_rows(p) for p in train_paths]
    curve, per_amp = bess_fit_spread(np.vstack(train_rows))
    tau, idle, k = bess_fit_thermal(train_rows)
    params = {
        "sample_period_s": BESS_STEP_MS / 1000.0,
        "recent_rows": BESS_RECENT_ROWS,
        "spread_curve": curve,
        "spread_per_amp_mv": per_amp,
        "thermal_tau_s": tau,
        "rise_idle_c": idle,
        "rise_per_amp2_c": k,
    }
    L, S = BESS_WINDOW["length"], BESS_WINDOW["step"]
    feats_of = lambda rows: F.bess_features_sliding(rows, params, L, S)[1]
    X = np.vstack([feats_of(r) for r in train_rows])
    val_seqs = [feats_of(bess_load_rows(p)) for p in val_paths]
    Xv = np.vstack(val_seqs)
    mean = X.mean(axis=0)
    std = np.maximum(X.std(axis=0), floors)
    Z = (X - mean) / std
    rng = np.random.default_rng(0)
    Zn = Z + rng.normal(0.0, 1.0, Z.shape) * (BESS_INPUT_NOISE * floors / std)
    model = MLPRegressor(
        hidden_layer_sizes=(32, 4, 32), activation="tanh", alpha=1e-4,
        learning_rate_init=1e-3, max_iter=300, batch_size=256,
        early_stopping=True, n_iter_no_change=15, random_state=0,
    )
    model.fit(Zn.astype(np.float32), Z.astype(np.float32))
    learnt = np.quantile(np.abs(Z - model.predict(Z)), 0.9999, axis=0) / 3.89
    scale = np.maximum(learnt, floors / std)
    train_scores = scores_of(model, Z, scale)
    sustained, val_scores = [], []
    for f in val_seqs:
        s = scores_of(model, (f - mean) / std, scale)
        val_scores.append(s)
        R = BESS_RAISE_COUNT
        run_min = np.min(np.stack([s[i : len(s) - R + 1 + i] for i in range(R)]), axis=0)
        sustained.append(run_min.max())
    val_scores = np.concatenate(val_scores)
    floor_level = 9.0 / len(names)
    raise_level = float(max(THRESHOLD_MARGIN * max(sustained), floor_level))
    clear_level = 0.5 * raise_level

    onnx_path = os.path.join(out, "bess-rack-ae.onnx")
    write_onnx(model, X.shape[1], "bess_rack_ae", onnx_path)
    meta = {
        "format": "dcmms-anomaly-model/1",
        "model_id": "bess-rack-ae",
        "version": "1.0.0",
        "asset_class": "bess_rack",
        "feature_set": "bess_rack/1",
        "onnx_sha256": sha256_of([onnx_path]),
        "roles": [{"role": r, "unit": u} for r, u in F.BESS_ROLES],
        "params": params,
        "window": BESS_WINDOW,
        "features": [
            {"name": n, "unit": u, "mean": float(m), "std": float(s), "error_scale": float(r),
             "template": t, "decimals": d, "context": n in BESS_CONTEXT}
            for (n, u, t, d), m, s, r in zip(F.BESS_FEATURES, mean, std, scale)
        ],
        "score": {"raise": raise_level, "clear": clear_level,
                  "raise_count": BESS_RAISE_COUNT, "clear_count": BESS_CLEAR_COUNT},
        "training": {
            "data_sha256": data_sha,
            "generator": (f"dcmms-sim dataset --asset-class bess --days {BESS_DAYS} --step-ms {BESS_STEP_MS}"
                          f" --seed S --start D (S in {BESS_TRAIN_SEEDS[0]}..{BESS_TRAIN_SEEDS[-1]},"
                          f" D spread over 2026: train.py pv_start); files concatenated in seed order"),
            "seeds": BESS_TRAIN_SEEDS,
            "validation_seeds": BESS_VAL_SEEDS,
            "days_per_seed": BESS_DAYS,
            "windows": int(X.shape[0]),
            "network": "sklearn MLPRegressor (32, 4, 32) tanh, denoising (input noise 0.5 x floor), clean target",
            "floors": BESS_FLOORS,
            "learnt_error_scale": {n: float(v * s) for n, v, s in zip(names, learnt, std)},
            "raise_floor": floor_level,
            "validation_sustained_max": float(max(sustained)),
        },
    }
    with open(os.path.join(out, "bess-rack-ae.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    fx = os.path.join(REPO, "edge", "tests", "fixtures", "bess_model_expected.csv")
    probe = np.vstack([Z[rng.integers(0, len(Z), 6)], rng.normal(0, 2, (4, Z.shape[1]))]).astype(np.float32)
    pred = model.predict(probe)
    n = Z.shape[1]
    with open(fx, "w") as f:
        f.write(f"# {n} inputs (normalised features) then {n} sklearn outputs per line\n")
        for zi, pi in zip(probe, pred):
            f.write(",".join(repr(float(v)) for v in list(zi) + list(pi)) + "\n")
    q = lambda s, p: float(np.quantile(s, p))
    print(f"bess: training windows {X.shape[0]}, validation windows {Xv.shape[0]}, epochs {model.n_iter_}")
    print(f"bess: spread curve {curve}, {per_amp} mV/A; thermal tau {tau} s, rise {idle} + {k} x I^2 °C")
    print("bess: mean " + ", ".join(f"{n} {s:.4g}" for n, s in zip(names, mean)))
    print("bess: std " + ", ".join(f"{n} {s:.4g}" for n, s in zip(names, std)))
    print("bess: learnt error scale " + ", ".join(f"{n} {v * s:.4g}" for n, v, s in zip(names, learnt, std)))
    print(f"bess: train score p50 {q(train_scores, .5):.4f} p99 {q(train_scores, .99):.4f} max {train_scores.max():.4f}")
    print(f"bess: validation score p50 {q(val_scores, .5):.4f} p99 {q(val_scores, .99):.4f} max {val_scores.max():.4f}")
    print(f"bess: raise {raise_level:.4f} clear {clear_level:.4f} (sustained validation max {max(sustained):.4f} x {THRESHOLD_MARGIN}, floor {floor_level:.4f})")
    print(f"bess: training data sha256 {data_sha}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim", required=True, help="path of the dcmms-sim binary")
    ap.add_argument("--asset-class", choices=["wind", "pv", "bess", "all"], default="all")
    a = ap.parse_args()
    os.makedirs(DATA, exist_ok=True)
    if a.asset_class in ("wind", "all"):
        train_wind(a.sim, os.path.join(HERE, "wind-turbine"))
    if a.asset_class in ("pv", "all"):
        train_pv(a.sim, os.path.join(HERE, "pv-inverter"))
    if a.asset_class in ("bess", "all"):
        train_bess(a.sim, os.path.join(HERE, "bess-rack"))


if __name__ == "__main__":
    sys.exit(main())
