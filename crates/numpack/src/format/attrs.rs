//! `attrs_<stem>.npka`: an array's attributes, one JSON object of any JSON values (numpack's
//! own file; the published package ignores it). At most [`MAX_ATTRS_BYTES`] encoded; nesting
//! is bounded by the decoder (128 levels).

use serde_json::{Map, Value};

/// Largest attributes file (per array).
pub const MAX_ATTRS_BYTES: usize = 1 << 20;

/// An array's attributes, in the order their keys were first set.
pub type Attrs = Map<String, Value>;

/// Decodes attributes: a JSON object, at most [`MAX_ATTRS_BYTES`].
pub fn decode(bytes: &[u8]) -> Result<Attrs, String> {
    if bytes.len() > MAX_ATTRS_BYTES {
        return Err(format!(
            "is {} bytes, more than attributes can be ({MAX_ATTRS_BYTES})",
            bytes.len()
        ));
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("is not a JSON object".to_owned()),
        Err(e) => Err(format!("is not JSON: {e}")),
    }
}

/// Encodes attributes; `Err` with the size when they would be over [`MAX_ATTRS_BYTES`].
pub fn encode(attrs: &Attrs) -> Result<Vec<u8>, usize> {
    let out = serde_json::to_vec(attrs).expect("JSON values encode");
    if out.len() > MAX_ATTRS_BYTES {
        return Err(out.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn objects_round_trip_and_others_are_refused() {
        let a =
            decode(br#"{"model": "e5", "dim": 768, "norm": true, "x": [1, {"y": null}]}"#).unwrap();
        assert_eq!(decode(&encode(&a).unwrap()).unwrap(), a);
        assert_eq!(a.keys().next().map(String::as_str), Some("model"));
        for bad in [&b"[]"[..], b"3", b"{", b"\xff", b"{\"a\": NaN}"] {
            assert!(decode(bad).is_err());
        }
        assert!(decode(&vec![b'['; 100_000]).is_err());
        assert!(decode(&vec![b' '; MAX_ATTRS_BYTES + 1]).is_err());
        let mut big = Attrs::new();
        big.insert("k".into(), Value::String("x".repeat(MAX_ATTRS_BYTES)));
        assert!(encode(&big).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(a) = decode(&bytes) {
                prop_assert_eq!(decode(&encode(&a).unwrap()).unwrap(), a);
            }
        }
    }
}
