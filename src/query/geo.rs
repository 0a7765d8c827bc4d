//! Geo conditions: bounding box, radius (haversine) and polygon, with Qdrant's boundary rules.
//!
//! Payload geo points are JSON objects `{"lon": <number>, "lat": <number>}` (extra keys are
//! ignored; a point that lacks either number is no geo point). Coordinates are degrees.
//!
//! * Bounding box: `bottom_right.lat < lat < top_left.lat` (strict) and, for longitude,
//!   `top_left.lon < lon < bottom_right.lon`; when `top_left.lon > bottom_right.lon` the box
//!   crosses the antimeridian and `lon > top_left.lon || lon < bottom_right.lon`.
//! * Radius: haversine great-circle distance on a sphere of radius 6 371 008.8 m (mean Earth
//!   radius) strictly less than `radius` metres.
//! * Polygon: the point must lie in the interior of the exterior ring (winding number ≠ 0) and
//!   not inside or on any interior ring; points on any ring are outside.

use serde_json::{json, Value};

/// Mean Earth radius in metres used by the radius condition.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub lon: f64,
    pub lat: f64,
}

impl GeoPoint {
    /// A valid filter point: `lon ∈ [-180, 180]`, `lat ∈ [-90, 90]`.
    pub fn new(lon: f64, lat: f64) -> Result<GeoPoint, String> {
        if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
            return Err(format!("expected `lat` = {lat} within [-90;90] and `lon` = {lon} within [-180;180]"));
        }
        Ok(GeoPoint { lon, lat })
    }

    /// The geo point stored in a payload value, if it is one. Coordinates out of range are
    /// no geo point (Qdrant's payload reading rejects them, and its geo index skips them).
    pub fn from_payload(v: &Value) -> Option<GeoPoint> {
        let o = v.as_object()?;
        let lon = o.get("lon")?.as_f64()?;
        let lat = o.get("lat")?.as_f64()?;
        GeoPoint::new(lon, lat).ok()
    }

    pub fn to_json(&self) -> Value {
        json!({"lon": self.lon, "lat": self.lat})
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBoundingBox {
    pub top_left: GeoPoint,
    pub bottom_right: GeoPoint,
}

impl GeoBoundingBox {
    pub fn contains(&self, p: &GeoPoint) -> bool {
        let lon_ok = if self.top_left.lon > self.bottom_right.lon {
            p.lon > self.top_left.lon || p.lon < self.bottom_right.lon
        } else {
            self.top_left.lon < p.lon && p.lon < self.bottom_right.lon
        };
        lon_ok && self.bottom_right.lat < p.lat && p.lat < self.top_left.lat
    }

    pub fn to_json(&self) -> Value {
        json!({"top_left": self.top_left.to_json(), "bottom_right": self.bottom_right.to_json()})
    }
}

/// Great-circle distance in metres.
pub fn haversine(a: &GeoPoint, b: &GeoPoint) -> f64 {
    let phi1 = a.lat.to_radians();
    let phi2 = b.lat.to_radians();
    let dphi = (b.lat - a.lat).to_radians();
    let dlambda = (b.lon - a.lon).to_radians();
    let h = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    2.0 * h.sqrt().asin() * EARTH_RADIUS_M
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoRadius {
    pub center: GeoPoint,
    /// metres
    pub radius: f64,
}

impl GeoRadius {
    pub fn contains(&self, p: &GeoPoint) -> bool {
        haversine(&self.center, p) < self.radius
    }

    pub fn to_json(&self) -> Value {
        json!({"center": self.center.to_json(), "radius": self.radius})
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeoPolygon {
    /// Closed ring (first point == last point), at least 4 points.
    pub exterior: Vec<GeoPoint>,
    pub interiors: Option<Vec<Vec<GeoPoint>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Inside,
    OnBoundary,
    Outside,
}

/// Sign of the cross product (b - a) × (c - a): > 0 counter-clockwise, < 0 clockwise.
fn orient(a: &GeoPoint, b: &GeoPoint, c: &GeoPoint) -> f64 {
    (b.lon - a.lon) * (c.lat - a.lat) - (b.lat - a.lat) * (c.lon - a.lon)
}

fn between(x: f64, a: f64, b: f64) -> bool {
    (a <= x && x <= b) || (b <= x && x <= a)
}

/// Winding-number position of `p` relative to a closed ring.
fn ring_position(ring: &[GeoPoint], p: &GeoPoint) -> Position {
    if ring.len() < 2 {
        return Position::Outside;
    }
    let mut winding = 0i64;
    for w in ring.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.lat <= p.lat {
            if b.lat >= p.lat {
                let o = orient(a, b, p);
                if o > 0.0 && b.lat != p.lat {
                    winding += 1;
                } else if o == 0.0 && between(p.lon, a.lon, b.lon) {
                    return Position::OnBoundary;
                }
            }
        } else if b.lat <= p.lat {
            let o = orient(a, b, p);
            if o < 0.0 {
                winding -= 1;
            } else if o == 0.0 && between(p.lon, a.lon, b.lon) {
                return Position::OnBoundary;
            }
        }
    }
    if winding == 0 {
        Position::Outside
    } else {
        Position::Inside
    }
}

impl GeoPolygon {
    /// Qdrant's ring rule: more than 3 points, first and last equal within `f64::EPSILON`.
    pub fn validate_ring(ring: &[GeoPoint]) -> Result<(), String> {
        if ring.len() <= 3 {
            return Err(format!("polygon invalid, the size must be at least 4, got {}", ring.len()));
        }
        if let (Some(f), Some(l)) = (ring.first(), ring.last()) {
            if (f.lat - l.lat).abs() > f64::EPSILON || (f.lon - l.lon).abs() > f64::EPSILON {
                return Err(
                    "polygon invalid, the first and the last points should be the same to form a closed line".into()
                );
            }
        }
        Ok(())
    }

    pub fn contains(&self, p: &GeoPoint) -> bool {
        if ring_position(&self.exterior, p) != Position::Inside {
            return false;
        }
        self.interiors.iter().flatten().all(|hole| ring_position(hole, p) == Position::Outside)
    }

    pub fn to_json(&self) -> Value {
        let ring = |r: &Vec<GeoPoint>| json!({"points": r.iter().map(GeoPoint::to_json).collect::<Vec<_>>()});
        let mut m = serde_json::Map::new();
        m.insert("exterior".into(), ring(&self.exterior));
        if let Some(interiors) = &self.interiors {
            m.insert("interiors".into(), Value::Array(interiors.iter().map(ring).collect()));
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(lon: f64, lat: f64) -> GeoPoint {
        GeoPoint { lon, lat }
    }

    #[test]
    fn haversine_known_distance() {
        // Berlin -> Moscow ≈ 1608 km on the mean-radius sphere.
        let d = haversine(&pt(13.404954, 52.520008), &pt(37.617298, 55.755825));
        assert!((d - 1_608_000.0).abs() < 3_000.0, "{d}");
        assert_eq!(haversine(&pt(1.0, 2.0), &pt(1.0, 2.0)), 0.0);
        // one degree of latitude = R * pi / 180
        let one = haversine(&pt(0.0, 0.0), &pt(0.0, 1.0));
        assert!((one - EARTH_RADIUS_M * std::f64::consts::PI / 180.0).abs() < 1e-6);
        let r = GeoRadius { center: pt(0.0, 0.0), radius: one };
        assert!(!r.contains(&pt(0.0, 1.0)), "strict <");
        assert!(r.contains(&pt(0.0, 0.999)));
    }

    #[test]
    fn bounding_box_strict_and_antimeridian() {
        let b = GeoBoundingBox { top_left: pt(-10.0, 10.0), bottom_right: pt(10.0, -10.0) };
        assert!(b.contains(&pt(0.0, 0.0)));
        assert!(!b.contains(&pt(10.0, 0.0)));
        assert!(!b.contains(&pt(0.0, -10.0)));
        let am = GeoBoundingBox { top_left: pt(170.0, 10.0), bottom_right: pt(-170.0, -10.0) };
        assert!(am.contains(&pt(175.0, 0.0)));
        assert!(am.contains(&pt(-175.0, 0.0)));
        assert!(!am.contains(&pt(0.0, 0.0)));
    }

    #[test]
    fn polygon_with_hole_and_boundaries() {
        let sq = |a: f64, b: f64| vec![pt(a, a), pt(b, a), pt(b, b), pt(a, b), pt(a, a)];
        let poly = GeoPolygon { exterior: sq(0.0, 10.0), interiors: Some(vec![sq(4.0, 6.0)]) };
        assert!(poly.contains(&pt(1.0, 1.0)));
        assert!(!poly.contains(&pt(5.0, 5.0)), "inside hole");
        assert!(!poly.contains(&pt(4.0, 5.0)), "on hole edge");
        assert!(!poly.contains(&pt(0.0, 5.0)), "on exterior edge");
        assert!(!poly.contains(&pt(10.0, 10.0)), "vertex");
        assert!(!poly.contains(&pt(11.0, 5.0)));
        // clockwise ring works too
        let mut cw = sq(0.0, 10.0);
        cw.reverse();
        assert!(GeoPolygon { exterior: cw, interiors: None }.contains(&pt(3.0, 7.0)));
        assert!(GeoPolygon::validate_ring(&sq(0.0, 1.0)).is_ok());
        assert!(GeoPolygon::validate_ring(&sq(0.0, 1.0)[..4]).is_err());
        assert!(GeoPolygon::validate_ring(&[pt(0.0, 0.0), pt(1.0, 0.0), pt(1.0, 1.0)]).is_err());
    }
}
