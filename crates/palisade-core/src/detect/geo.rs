//! Distances and shapes on the Earth, for geofences and impossible travel.

/// A point in degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl LatLon {
    pub fn is_valid(self) -> bool {
        self.lat.is_finite() && self.lon.is_finite() && self.lat.abs() <= 90.0 && self.lon.abs() <= 180.0
    }
}

const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance in km (haversine).
pub fn distance_km(a: LatLon, b: LatLon) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().clamp(0.0, 1.0).asin()
}

/// Whether `p` lies inside the polygon `ring` (even-odd rule on lat/lon, fine for areas that do
/// not cross the antimeridian or a pole).
pub fn in_polygon(p: LatLon, ring: &[LatLon]) -> bool {
    let mut inside = false;
    let mut prev = match ring.last() {
        Some(l) => *l,
        None => return false,
    };
    for &cur in ring {
        if (cur.lat > p.lat) != (prev.lat > p.lat) {
            let t = (p.lat - cur.lat) / (prev.lat - cur.lat);
            if p.lon < cur.lon + t * (prev.lon - cur.lon) {
                inside = !inside;
            }
        }
        prev = cur;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chicago_to_frankfurt_is_about_7000_km() {
        let d = distance_km(LatLon { lat: 41.8781, lon: -87.6298 }, LatLon { lat: 50.1109, lon: 8.6821 });
        assert!((6_900.0..7_100.0).contains(&d), "{d}");
        let p = LatLon { lat: 1.0, lon: 2.0 };
        assert!(distance_km(p, p).abs() < 1e-9);
    }

    #[test]
    fn polygon_contains() {
        let square = [
            LatLon { lat: 0.0, lon: 0.0 },
            LatLon { lat: 0.0, lon: 1.0 },
            LatLon { lat: 1.0, lon: 1.0 },
            LatLon { lat: 1.0, lon: 0.0 },
        ];
        assert!(in_polygon(LatLon { lat: 0.5, lon: 0.5 }, &square));
        assert!(!in_polygon(LatLon { lat: 1.5, lon: 0.5 }, &square));
        assert!(!in_polygon(LatLon { lat: 0.5, lon: 0.5 }, &[]));
    }
}
