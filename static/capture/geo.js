/* The capture page's geometry: distances, bearings, and a camera's plain coverage drawn exactly as
 * the database draws it, from the rule the server hands out (GET /api/cameras/rule).
 *
 * app/sql/coverage.sql is the one definition. plain() follows safermap_plain_coverage (which field
 * of view, which range, whether anything is assumed) using the rule's numbers; shape() follows
 * safermap_coverage_shape: a wedge of max(4, ceil(fov/4)) arc steps, or a disc of 64 segments
 * (ST_Buffer with 16 per quarter), laid out in the partnership's metric grid. A bearing is a grid
 * bearing there, so a Transverse Mercator grid turns the wedge by its convergence and shrinks it by
 * its scale factor; shape() does the same, so the preview is the wedge the trigger will store
 * (tests/test_capture_page.py checks the two agree within 1 % of area).
 */
(function () {
  "use strict";

  const RAD = Math.PI / 180;
  const A = 6378137, F = 1 / 298.257223563, E2 = F * (2 - F), EP2 = E2 / (1 - E2);
  const DISC_SEGMENTS = 64;   // ST_Buffer(p, r, 16): 16 segments a quarter circle

  // The ellipsoid's radii of curvature at a latitude: metres per radian north (M) and east (N cos).
  function radii(lat) {
    const s = Math.sin(lat * RAD);
    const w = Math.sqrt(1 - E2 * s * s);
    return { M: A * (1 - E2) / (w * w * w), N: A / w };
  }

  // The point `east`, `north` metres from (lat, lon): exact enough within a camera's 2 km.
  function offset(lat, lon, east, north) {
    const r = radii(lat);
    return { lat: lat + north / r.M / RAD, lon: lon + east / (r.N * Math.cos(lat * RAD)) / RAD };
  }

  function local(from, to) {
    const r = radii((from.lat + to.lat) / 2);
    const lat = (from.lat + to.lat) / 2 * RAD;
    return { east: (to.lon - from.lon) * RAD * r.N * Math.cos(lat), north: (to.lat - from.lat) * RAD * r.M };
  }

  function distance(a, b) {
    const d = local(a, b);
    return Math.sqrt(d.east * d.east + d.north * d.north);
  }

  function norm(deg) { return ((deg % 360) + 360) % 360; }

  // True azimuth from a to b, degrees clockwise from north.
  function azimuth(a, b) {
    const d = local(a, b);
    return norm(Math.atan2(d.east, d.north) / RAD);
  }

  // The grid's convergence (degrees: grid north is this far clockwise of true north, so a grid
  // bearing b points at true azimuth b + gamma) and point scale at (lat, lon). No grid: none.
  function gridAt(grid, lat, lon) {
    if (!grid) return { gamma: 0, k: 1 };
    const dl = (lon - grid.lon0) * RAD, phi = lat * RAD, c2 = Math.cos(phi) * Math.cos(phi);
    return {
      gamma: Math.atan(Math.tan(dl) * Math.sin(phi)) / RAD,
      k: grid.k0 * (1 + dl * dl * c2 * (1 + EP2 * c2) / 2),
    };
  }

  function gridBearing(grid, lat, lon, trueAzimuth) { return norm(trueAzimuth - gridAt(grid, lat, lon).gamma); }
  function trueAzimuth(grid, lat, lon, bearing) { return norm(bearing + gridAt(grid, lat, lon).gamma); }

  function given(v) { return v !== null && v !== undefined && v !== "" && isFinite(v); }

  // EN 62676-4: the distance at which `px` pixels over `fov` degrees still give `density` px/m.
  function densityDistance(rule, px, fov, density) {
    const d = fov < rule.fisheye_from_fov_deg ? px / (density * 2 * Math.tan(fov * RAD / 2))
      : px / (density * fov * RAD);
    return Math.min(rule.max_range_m, d);
  }

  // safermap_plain_coverage's values for a camera: {fov, range_m, bands, assumed}.
  function plain(rule, v) {
    const types = rule.fov_deg_by_type;
    const typeFov = Number(types[v.camera_type] !== undefined ? types[v.camera_type] : types.fixed);
    const fov = !given(v.bearing) ? 360 : given(v.fov) ? Number(v.fov) : typeFov;
    const bands = {};
    if (given(v.resolution_px)) {
      const cap = given(v.range_m) ? Number(v.range_m) : rule.max_range_m;
      Object.keys(rule.density_px_per_m).forEach((band) => {
        const d = densityDistance(rule, Number(v.resolution_px), fov, Number(rule.density_px_per_m[band]));
        bands[band] = Math.round(Math.min(d, cap) * 100) / 100;
      });
    }
    const height = given(v.height_m) && Number(v.height_m) !== 0 ? Number(v.height_m) : rule.assumed_height_m;
    const band = bands[v.purpose || rule.purpose_when_unknown];
    const range = given(v.range_m) ? Number(v.range_m) : band !== undefined ? band : rule.range_m_per_height_m * height;
    const assumed = (!given(v.range_m) && !given(v.resolution_px)) || (!given(v.fov) && fov < 360) ||
      (!given(v.bearing) && typeFov < 360);
    return { fov, range_m: range, bands, assumed };
  }

  // safermap_coverage_shape: [[lat, lon], ...] of the wedge (or disc) as the trigger stores it.
  function shape(grid, lat, lon, bearing, fov, range) {
    const g = gridAt(grid, lat, lon);
    const ground = range / g.k;
    const at = (gridAzimuthDeg) => {
      const t = (gridAzimuthDeg + g.gamma) * RAD;
      const p = offset(lat, lon, ground * Math.sin(t), ground * Math.cos(t));
      return [p.lat, p.lon];
    };
    if (fov >= 360) {
      const ring = [];
      for (let i = 0; i < DISC_SEGMENTS; i++) ring.push(at(90 - i * 360 / DISC_SEGMENTS));
      return ring;
    }
    const b = given(bearing) ? Number(bearing) : 0;
    const steps = Math.max(4, Math.ceil(fov / 4));
    const ring = [[lat, lon]];
    for (let i = 0; i <= steps; i++) ring.push(at(b - fov / 2 + fov * i / steps));
    return ring;
  }

  window.SaferCapture.geo = { radii, offset, local, distance, azimuth, norm, gridAt, gridBearing, trueAzimuth,
    plain, shape, densityDistance };
})();
