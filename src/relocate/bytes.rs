//! [`ByteString`]: raw bytes (file names, C strings) stored losslessly in JSON — a plain string
//! when the bytes are UTF-8, `{"hex": "…"}` otherwise.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that are usually, but not always, UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteString(pub Vec<u8>);

impl ByteString {
    /// A lossy rendering for messages.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&[u8]> for ByteString {
    fn from(bytes: &[u8]) -> Self {
        ByteString(bytes.to_vec())
    }
}

impl From<&str> for ByteString {
    fn from(text: &str) -> Self {
        ByteString(text.as_bytes().to_vec())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Hex { hex: String },
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => Repr::Text(text.to_string()),
            Err(_) => Repr::Hex {
                hex: hex::encode(&self.0),
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Repr::deserialize(deserializer)? {
            Repr::Text(text) => Ok(ByteString(text.into_bytes())),
            Repr::Hex { hex } => hex::decode(hex)
                .map(ByteString)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_utf8_and_raw_bytes() {
        for bytes in [b"plain/path".to_vec(), b"caf\xe9.txt".to_vec()] {
            let json = serde_json::to_string(&ByteString(bytes.clone())).unwrap();
            let back: ByteString = serde_json::from_str(&json).unwrap();
            assert_eq!(back.0, bytes, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&ByteString(b"a".to_vec())).unwrap(),
            "\"a\""
        );
    }
}
