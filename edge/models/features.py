"""Feature sets of docs/specs/anomaly-models.md, section 5.

The Rust twin is edge/src/anomaly/features.rs; the parity fixtures written by
train.py (edge/tests/fixtures/{wind,pv}_features_*.csv) keep them equal.
"""

import numpy as np

WIND_ROLES = [
    ("wind_speed", "m/s"),
    ("active_power", "kW"),
    ("rotor_speed", "rpm"),
    ("pitch_angle", "deg"),
    ("gearbox_temp", "°C"),
    ("generator_temp", "°C"),
    ("bearing_temp", "°C"),
    ("ambient_temp", "°C"),
]

# (name, unit, template, decimals)
WIND_FEATURES = [
    ("wind_mean", "m/s", "wind speed {abs_delta} m/s {direction} expected", 1),
    ("power_mean", "kW", "power {abs_delta} kW {direction} expected", 0),
    ("power_deviation", "%", "power {abs_delta} % {direction} expected for this wind", 0),
    ("pitch_mean", "deg", "blade pitch {abs_delta}° {direction} expected for this wind", 1),
    ("rotor_mean", "rpm", "rotor speed {abs_delta} rpm {direction} expected for this wind", 1),
    ("gearbox_rise", "°C", "gearbox temperature {abs_delta} °C {direction} expected for this power", 0),
    ("generator_rise", "°C", "generator winding temperature {abs_delta} °C {direction} expected for this power", 0),
    ("bearing_rise", "°C", "generator bearing temperature {abs_delta} °C {direction} expected for this power", 0),
]


def wind_power_curve(rated_kw=3000.0, cut_in=3.0, rated=12.0, cut_out=25.0):
    """The nameplate power curve as a table: [[wind m/s, kW], ...]."""
    pts = []
    v = cut_in
    while v < rated + 1e-9:
        c = (v**3 - cut_in**3) / (rated**3 - cut_in**3)
        pts.append([round(v, 2), round(rated_kw * c, 3)])
        v += 0.5
    # Rated up to 30 m/s: the anemometer may read past cut-out while the
    # turbine still runs; stopped windows are not scored at all.
    pts.append([30.0, rated_kw])
    return pts


def expected_power(wind, curve):
    xp = np.array([p[0] for p in curve], dtype=np.float64)
    fp = np.array([p[1] for p in curve], dtype=np.float64)
    return np.interp(wind, xp, fp, left=0.0, right=0.0)


def wind_row_terms(rows, params):
    """Per-row quantities whose window means are the features: (n, 8)."""
    wind, power, rotor, pitch, gb, gen, br, amb = (rows[:, i] for i in range(8))
    exp = expected_power(wind, params["power_curve"])
    # Column 2 holds the expected power; power_deviation is formed from the
    # sums (ratio of sums, not mean of ratios) in power_deviation().
    return np.stack(
        [wind, power, exp, pitch, rotor, gb - amb, gen - amb, br - amb], axis=1
    )


def power_deviation(sum_power, sum_expected, n, rated_kw):
    """100 (sum P - sum E) / max(sum E, 5 % of rated x n): the shortfall
    against the power curve in percent, floored so a turbine near cut-in
    does not divide by almost nothing."""
    return 100.0 * (sum_power - sum_expected) / np.maximum(sum_expected, 0.05 * rated_kw * n)


def wind_features(window_rows, params):
    """Features of one window (length x 8 roles, role order) by direct sums."""
    terms = wind_row_terms(window_rows, params)
    n = len(window_rows)
    sums = terms.sum(axis=0)
    f = sums / n
    f[2] = power_deviation(sums[1], sums[2], n, params["rated_kw"])
    return f


FEATHERED_DEG = 45.0


def wind_scoreable(window_rows):
    """A window is scored only when no row is feathered (pitch >= 45 deg:
    stopped for high wind or by the controller)."""
    return not bool((window_rows[:, 3] >= FEATHERED_DEG).any())


def wind_features_sliding(rows, params, length, step):
    """Features of every window [i-length+1, i] for i = length-1, length-1+step, ...

    Uses prefix sums (fast); equal to wind_features up to rounding.
    Returns (end_indices, features (k x 8), scoreable (k,)).
    """
    terms = wind_row_terms(rows, params)
    cs = np.vstack([np.zeros((1, terms.shape[1])), np.cumsum(terms, axis=0)])
    ends = np.arange(length - 1, len(rows), step)
    sums = cs[ends + 1] - cs[ends + 1 - length]
    feats = sums / length
    feats[:, 2] = power_deviation(sums[:, 1], sums[:, 2], length, params["rated_kw"])
    fe = np.concatenate([[0], np.cumsum(rows[:, 3] >= FEATHERED_DEG)])
    scoreable = (fe[ends + 1] - fe[ends + 1 - length]) == 0
    return ends, feats, scoreable


# ---------------------------------------------------------------------------
# pv_inverter/1 (docs/specs/anomaly-models.md §5)

PV_ROLES = [
    ("poa_irradiance", "W/m²"),
    ("ambient_temp", "°C"),
    ("module_temp", "°C"),
    ("dc_power", "W"),
    ("ac_power", "W"),
    ("heatsink_temp", "°C"),
]

# (name, unit, template, decimals)
PV_FEATURES = [
    ("load_mean", "%", "AC output {abs_delta} % of rating {direction} expected", 0),
    ("dc_performance", "%", "DC power {abs_delta} % {direction} expected for this irradiance and module temperature", 1),
    ("dc_change", "%", "DC power {abs_delta} % {direction} its own level of the last 24 hours at the same irradiance", 1),
    ("efficiency", "%", "DC/AC conversion efficiency {abs_delta} % {direction} expected for this load", 2),
    ("heatsink_excess", "°C", "heat-sink temperature {abs_delta} °C {direction} expected for this load and ambient", 1),
]


def pv_row_terms(rows, params):
    """Per-row quantities: daylight, usable (daylight and not clipped), DC
    power, expected DC power, AC power, load, heat-sink excess."""
    poa, amb, mod, dc, ac, hs = (rows[:, i] for i in range(6))
    rated = params["rated_ac_w"]
    day = poa >= params["daylight_poa"]
    use = day & (ac < params["clip_fraction"] * rated)
    exp = params["dc_capacity_w"] * poa / 1000.0 * (1.0 + params["power_temp_coeff"] * (mod - 25.0))
    load = ac / rated
    hx = hs - amb - (params["heatsink_rise_idle_c"] + params["heatsink_rise_per_load_c"] * load)
    return day, use, dc, exp, ac, load, hx


def pv_features(window_rows, params):
    """Features of one window (rows x 6 roles, role order), or None when the
    window is declined. The recent part is the last recent_rows rows, the
    baseline part all rows before it."""
    k = params["recent_rows"]
    n = len(window_rows)
    if n <= k:
        return None
    day, use, dc, exp, ac, load, hx = pv_row_terms(window_rows, params)
    if not day[n - k:].all():
        return None  # night, dawn or dusk in the recent part
    b, r = slice(0, n - k), slice(n - k, n)
    b_use, r_use = use[b], use[r]
    if int(b_use.sum()) < params["min_baseline_rows"]:
        return None
    b_exp = float(np.sum(exp[b][b_use]))
    if not b_exp > 0.0:
        return None
    base = float(np.sum(dc[b][b_use])) / b_exp
    r_exp = float(np.sum(exp[r][r_use]))
    # No usable recent row (all clipped): no evidence of a change.
    recent = float(np.sum(dc[r][r_use])) / r_exp if r_exp > 0.0 else base
    sum_dc = float(np.sum(dc[r]))
    return np.array([
        100.0 * float(np.sum(load[r])) / k,
        100.0 * recent,
        100.0 * (recent / base - 1.0),
        100.0 * float(np.sum(ac[r])) / sum_dc if sum_dc > 0.0 else 0.0,
        float(np.sum(hx[r])) / k,
    ])


def pv_features_sliding(rows, params, length, step):
    """Features of every window [i-length+1, i] for i = length-1,
    length-1+step, ... by prefix sums (fast; equal to pv_features up to
    rounding). Returns (end_indices, features (m x 5), scoreable (m,));
    declined windows' features are 0."""
    k = params["recent_rows"]
    day, use, dc, exp, ac, load, hx = pv_row_terms(rows, params)
    cols = np.stack([
        use.astype(np.float64), np.where(use, dc, 0.0), np.where(use, exp, 0.0),
        (~day).astype(np.float64), load, ac, dc, hx,
    ], axis=1)
    cs = np.vstack([np.zeros((1, cols.shape[1])), np.cumsum(cols, axis=0)])
    ends = np.arange(length - 1, len(rows), step)
    e1 = ends + 1
    base = cs[e1 - k] - cs[e1 - length]
    rec = cs[e1] - cs[e1 - k]
    ok = ((rec[:, 3] < 0.5) & (base[:, 0] >= params["min_baseline_rows"] - 0.5)
          & (base[:, 2] > 0.0) & (length > k))
    with np.errstate(divide="ignore", invalid="ignore"):
        b_ratio = base[:, 1] / base[:, 2]
        r_ratio = np.where(rec[:, 2] > 0.0, rec[:, 1] / rec[:, 2], b_ratio)
        eff = np.where(rec[:, 6] > 0.0, 100.0 * rec[:, 5] / rec[:, 6], 0.0)
        feats = np.stack([
            100.0 * rec[:, 4] / k, 100.0 * r_ratio, 100.0 * (r_ratio / b_ratio - 1.0),
            eff, rec[:, 7] / k,
        ], axis=1)
    feats[~ok] = 0.0
    return ends, feats, ok


# ---------------------------------------------------------------------------
# bess_rack/1 (docs/specs/anomaly-models.md §5)

BESS_ROLES = [
    ("rack_current", "A"),
    ("soc", "%"),
    ("cell_v_max", "V"),
    ("cell_v_min", "V"),
    ("cell_t_max", "°C"),
    ("cell_t_min", "°C"),
    ("ambient_temp", "°C"),
]

# (name, unit, template, decimals)
BESS_FEATURES = [
    ("current_rms", "A", "rack current {abs_delta} A {direction} expected", 0),
    ("soc_mean", "%", "state of charge {abs_delta} % {direction} expected", 0),
    ("spread_excess", "mV", "cell voltage spread {abs_delta} mV {direction} expected at this state of charge and current", 0),
    ("rise_excess", "°C", "hottest cell {abs_delta} °C {direction} expected for this current and ambient", 1),
    ("temp_spread", "°C", "cell temperature spread across the rack {abs_delta} °C {direction} expected", 1),
]


def bess_expected_spread(soc, current, params):
    """Healthy cell-voltage spread, mV: the curve (linear, end values beyond
    it) plus spread_per_amp_mv x |current|."""
    c = params["spread_curve"]
    xp = np.array([p[0] for p in c], dtype=np.float64)
    fp = np.array([p[1] for p in c], dtype=np.float64)
    return np.interp(soc, xp, fp) + params["spread_per_amp_mv"] * np.abs(current)


def bess_thermal_step(params):
    return 1.0 - np.exp(-params["sample_period_s"] / params["thermal_tau_s"])


def bess_row_terms(rows, params):
    """Per-row quantities except the thermal prediction: I^2, SoC, spread
    excess (mV), rise of the hottest cell over ambient, temperature spread,
    and the healthy steady rise (the prediction's drive)."""
    cur, soc, vmax, vmin, tmax, tmin, amb = (rows[:, i] for i in range(7))
    i2 = cur * cur
    spread = 1000.0 * (vmax - vmin)
    sx = spread - bess_expected_spread(soc, cur, params)
    rise = tmax - amb
    steady = params["rise_idle_c"] + params["rise_per_amp2_c"] * i2
    return i2, soc, sx, rise, tmax - tmin, steady


def bess_features(window_rows, params):
    """Features of one window (rows x 7 roles, role order), or None when it
    has no more rows than the recent part. Direct loop, as the Rust code."""
    k = params["recent_rows"]
    n = len(window_rows)
    if n <= k:
        return None
    i2, soc, sx, rise, tsp, steady = bess_row_terms(window_rows, params)
    a = bess_thermal_step(params)
    pred = np.empty(n)
    p = float(rise[0])
    for j in range(n):
        pred[j] = p
        p += a * (float(steady[j]) - p)
    ex = rise - pred
    r = slice(n - k, n)
    s = lambda v: float(sum(float(x) for x in v[r]))  # row order, as Rust
    return np.array([
        np.sqrt(s(i2) / k), s(soc) / k, s(sx) / k, s(ex) / k, s(tsp) / k,
    ])


def bess_features_sliding(rows, params, length, step):
    """Features of every window [i-length+1, i] for i = length-1,
    length-1+step, ... (fast; equal to bess_features up to rounding).
    Returns (end_indices, features (m x 5), scoreable (m,)).

    The prediction restarted at each window's first row s is, at row j,
    q^(j-s) (rise_s - G_s) + G_j with G the same filter run over the whole
    series from G_0 = 0 (q = 1 - a): the filter is linear."""
    from scipy.signal import lfilter
    k = params["recent_rows"]
    i2, soc, sx, rise, tsp, steady = bess_row_terms(rows, params)
    a = bess_thermal_step(params)
    q = 1.0 - a
    # G_0 = 0, G_{j+1} = q G_j + a steady_j.
    g = np.concatenate([[0.0], lfilter([a], [1.0, -q], steady)[:-1]])
    ends = np.arange(length - 1, len(rows), step)
    starts = ends - length + 1
    feats = np.zeros((len(ends), 5))
    ok = np.full(len(ends), length > k)
    cols = np.stack([i2, soc, sx, tsp], axis=1)
    cs = np.vstack([np.zeros((1, 4)), np.cumsum(cols, axis=0)])
    rec = (cs[ends + 1] - cs[ends + 1 - k]) / k
    feats[:, 0] = np.sqrt(np.maximum(rec[:, 0], 0.0))
    feats[:, 1] = rec[:, 1]
    feats[:, 2] = rec[:, 2]
    feats[:, 4] = rec[:, 3]
    # Rise excess over the recent rows j = e-k+1 .. e of each window.
    d = rise[starts] - g[starts]
    ex = np.zeros(len(ends))
    for off in range(k):
        j = ends - off
        ex += rise[j] - (q ** (j - starts)) * d - g[j]
    feats[:, 3] = ex / k
    return ends, feats, ok
