"""Feature sets of docs/specs/anomaly-models.md, section 5.

The Rust twin is edge/src/anomaly/features.rs; the parity fixture written by
train.py (edge/tests/fixtures/wind_features_*.csv) keeps them equal.
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
