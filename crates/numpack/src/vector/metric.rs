//! The metrics, their names and aliases, and their ranking direction.

use crate::error::NpkError;
use std::str::FromStr;

/// A similarity or distance between two vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Σ aᵢbᵢ (similarity).
    Dot,
    /// a·b / (‖a‖‖b‖) (similarity); one zero vector → 0, both zero → 1.
    Cosine,
    /// √Σ(aᵢ−bᵢ)² (distance).
    L2,
    /// Σ(aᵢ−bᵢ)² (distance).
    L2Sq,
    /// Differing bits (distance; binary vectors).
    Hamming,
    /// 1 − |a∧b| / |a∨b| over bits (distance; binary vectors).
    Jaccard,
    /// Kullback–Leibler divergence Σ aᵢ ln(aᵢ/bᵢ), epsilon-guarded (distance).
    Kl,
    /// Jensen–Shannon distance √(½KL(a‖m) + ½KL(b‖m)), m = (a+b)/2 (distance).
    Js,
}

impl Metric {
    /// Whether larger scores are better (similarities rank descending).
    pub fn is_similarity(self) -> bool {
        matches!(self, Metric::Dot | Metric::Cosine)
    }

    /// Whether the metric works on bit vectors.
    pub fn is_binary(self) -> bool {
        matches!(self, Metric::Hamming | Metric::Jaccard)
    }

    /// Canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Dot => "dot",
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
            Metric::L2Sq => "l2sq",
            Metric::Hamming => "hamming",
            Metric::Jaccard => "jaccard",
            Metric::Kl => "kl",
            Metric::Js => "js",
        }
    }
}

impl FromStr for Metric {
    type Err = NpkError;

    /// Case-insensitive, with the published aliases.
    fn from_str(s: &str) -> Result<Self, NpkError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "dot" | "dot_product" | "dotproduct" | "inner" | "inner_product" => Metric::Dot,
            "cos" | "cosine" | "cosine_similarity" => Metric::Cosine,
            "l2" | "euclidean" | "l2_distance" => Metric::L2,
            "l2sq" | "l2_squared" | "squared_euclidean" => Metric::L2Sq,
            "hamming" => Metric::Hamming,
            "jaccard" => Metric::Jaccard,
            "kl" | "kl_divergence" => Metric::Kl,
            "js" | "js_divergence" => Metric::Js,
            _ => return Err(NpkError::InvalidOperation(format!("Unknown metric: {s}"))),
        })
    }
}
