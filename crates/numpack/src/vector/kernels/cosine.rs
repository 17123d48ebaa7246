//! Cosine similarity a·b / (‖a‖‖b‖) (a similarity). One zero vector gives 0.0, two give 1.0.

use super::{Dot, Query};

/// Cosine similarity against a query whose squared norm is known.
pub trait Cosine: Dot {
    /// The cosine similarity of the query and `c`.
    fn cosine(q: &Query<'_, Self>, c: &[Self]) -> f64 {
        from_parts(Self::dot(q.v, c), q.norm2, Self::dot(c, c))
    }
}

impl<T: Dot> Cosine for T {}

/// Cosine from a dot product and two squared norms, with the zero-vector rules.
pub fn from_parts(dot: f64, na2: f64, nb2: f64) -> f64 {
    match (na2 == 0.0, nb2 == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => dot / (na2.sqrt() * nb2.sqrt()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_vector_rules() {
        assert_eq!(from_parts(0.0, 0.0, 0.0), 1.0);
        assert_eq!(from_parts(0.0, 0.0, 2.0), 0.0);
        assert_eq!(from_parts(0.0, 3.0, 0.0), 0.0);
        assert!((from_parts(2.0, 4.0, 1.0) - 1.0).abs() < 1e-15);
    }
}
