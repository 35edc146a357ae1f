"""Synthetic police.uk street-level crime files over Greater Manchester, for benchmarks.

Shaped like the real thing: incidents are snapped to ~40k anonymous points clustered around town
centres (a few points carry thousands of incidents), a realistic category mix, anti-social
behaviour with an empty Crime ID, 64-hex Crime IDs otherwise, and ~1.5% rows with no location.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HEADER = ["Crime ID", "Month", "Reported by", "Falls within", "Longitude", "Latitude", "Location",
          "LSOA code", "LSOA name", "Crime type", "Last outcome category", "Context"]
FORCE = "Greater Manchester Police"
BOUNDS = (-2.75, 53.33, -1.90, 53.69)  # minlon, minlat, maxlon, maxlat

# Town centres (lon, lat, spread in degrees, relative weight).
TOWNS = [
    ("Manchester", -2.2426, 53.4808, 0.030, 10), ("Salford", -2.2901, 53.4875, 0.025, 4),
    ("Bolton", -2.4282, 53.5769, 0.030, 4), ("Bury", -2.2966, 53.5933, 0.025, 3),
    ("Rochdale", -2.1561, 53.6097, 0.025, 3), ("Oldham", -2.1114, 53.5409, 0.025, 3),
    ("Stockport", -2.1575, 53.4106, 0.030, 4), ("Wigan", -2.6325, 53.5450, 0.030, 3),
    ("Trafford", -2.3547, 53.3838, 0.030, 3), ("Tameside", -2.0952, 53.4897, 0.025, 3),
    ("Leigh", -2.5150, 53.4975, 0.020, 2), ("Stretford", -2.3110, 53.4460, 0.020, 2),
]
# Shares of incidents by category, roughly as police.uk shows for a metropolitan force.
CATEGORY_SHARES = {
    "Anti-social behaviour": 0.30, "Violence and sexual offences": 0.30, "Public order": 0.07,
    "Criminal damage and arson": 0.06, "Shoplifting": 0.06, "Other theft": 0.05, "Vehicle crime": 0.05,
    "Burglary": 0.04, "Theft from the person": 0.02, "Drugs": 0.015, "Robbery": 0.01,
    "Possession of weapons": 0.005, "Bicycle theft": 0.005, "Other crime": 0.015,
}
OUTCOMES = ["Investigation complete; no suspect identified", "Under investigation",
            "Unable to prosecute suspect", "Status update unavailable", "Awaiting court outcome",
            "Offender given a caution", "Local resolution", "Court result unavailable"]
STREETS = ["High Street", "Market Street", "Church Road", "Station Road", "Park Road", "Bridge Street",
           "Oxford Road", "Mill Lane", "King Street", "Queen Street", "Victoria Road", "Chapel Street",
           "Shopping Area", "Parking Area", "Supermarket", "Petrol Station", "Nightclub", "Sports/Recreation Area",
           "Further/Higher Educational Building", "Hospital", "Police Station", "Bus/Coach Station"]


def snap_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n anonymous map points clustered around the towns, with a popularity weight each."""
    weights = np.array([t[4] for t in TOWNS], float)
    town = rng.choice(len(TOWNS), size=n, p=weights / weights.sum())
    centre_lon = np.array([t[1] for t in TOWNS])[town]
    centre_lat = np.array([t[2] for t in TOWNS])[town]
    spread = np.array([t[3] for t in TOWNS])[town]
    # A heavy tail of distances: dense centres, thinner suburbs.
    r = spread * rng.standard_t(3, size=n) * 0.8
    theta = rng.uniform(0, 2 * np.pi, size=n)
    lon = np.clip(centre_lon + r * np.cos(theta) * 1.6, BOUNDS[0], BOUNDS[2])
    lat = np.clip(centre_lat + r * np.sin(theta), BOUNDS[1], BOUNDS[3])
    # Popularity: points near a centre and a Zipf-like tail carry most incidents.
    pop = rng.pareto(1.2, size=n) + 1.0
    pop *= np.exp(-np.abs(r) / (spread * 2))
    return lon.round(6), lat.round(6), pop / pop.sum()


def write_police_uk_csv(path: Path | str, rows: int, seed: int = 0, month: str = "2024-01",
                        points: int = 40_000, no_location_share: float = 0.015) -> Path:
    """Write `rows` incidents for one month in police.uk's street CSV format; return the path."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    lon, lat, pop = snap_points(points, rng)
    point = rng.choice(points, size=rows, p=pop)
    names = list(CATEGORY_SHARES)
    shares = np.array(list(CATEGORY_SHARES.values()))
    cat = rng.choice(len(names), size=rows, p=shares / shares.sum())
    no_loc = rng.random(rows) < no_location_share
    outcome = rng.integers(0, len(OUTCOMES), size=rows)
    ids = rng.integers(0, 256, size=(rows, 32), dtype=np.uint8)
    street_of_point = rng.integers(0, len(STREETS), size=points)
    lsoa_of_point = (np.arange(points) // 25)  # ~25 snap points per LSOA
    town_names = [t[0] for t in TOWNS]
    lon_s = [f"{v:.6f}" for v in lon]
    lat_s = [f"{v:.6f}" for v in lat]
    asb = names.index("Anti-social behaviour")
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for i in range(rows):
            c, p = int(cat[i]), int(point[i])
            crime_id = "" if c == asb else ids[i].tobytes().hex()
            result = "" if c == asb else OUTCOMES[outcome[i]]
            if no_loc[i]:
                w.writerow([crime_id, month, FORCE, FORCE, "", "", "No location", "", "", names[c], result, ""])
                continue
            lsoa = int(lsoa_of_point[p])
            w.writerow([crime_id, month, FORCE, FORCE, lon_s[p], lat_s[p], f"On or near {STREETS[street_of_point[p]]}",
                        f"E01{5000 + lsoa:06d}", f"{town_names[lsoa % len(town_names)]} {lsoa % 300:03d}A",
                        names[c], result, ""])
    return path


if __name__ == "__main__":
    import sys
    out = write_police_uk_csv(sys.argv[1] if len(sys.argv) > 1 else "synthetic-street.csv",
                              int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
    print(out)
