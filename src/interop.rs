//! Optional interoperability: `serde` (feature `serde`) and `secrecy`
//! (feature `secrecy`).

#[cfg(feature = "serde")]
mod serde_impl {
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
    use zeroize::Zeroize;

    use crate::error::Error;
    use crate::{Enclave, LockedBuffer};

    /// Builds a [`LockedBuffer`] from a string, bytes or a sequence of bytes.
    struct BufferVisitor;

    fn to_de<E: de::Error>(e: Error) -> E {
        E::custom(e)
    }

    impl<'de> Visitor<'de> for BufferVisitor {
        type Value = LockedBuffer;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-empty string, byte string or sequence of bytes")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<LockedBuffer, E> {
            self.visit_bytes(v.as_bytes())
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<LockedBuffer, E> {
            LockedBuffer::from_string(v).map_err(to_de)
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<LockedBuffer, E> {
            let mut buf = LockedBuffer::new(v.len()).map_err(to_de)?;
            buf.copy(v).map_err(to_de)?;
            buf.freeze().map_err(to_de)?;
            Ok(buf)
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<LockedBuffer, E> {
            LockedBuffer::from_vec(v).map_err(to_de)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LockedBuffer, A::Error> {
            // Element by element straight into guarded memory, doubling
            // (guarded to guarded) when full: no heap copy is ever made.
            let mut buf = LockedBuffer::new(crate::mem::page_size()).map_err(to_de)?;
            let mut filled = 0;
            loop {
                let mut byte: u8 = match seq.next_element()? {
                    Some(byte) => byte,
                    None => break,
                };
                if filled == buf.len() {
                    buf = buf.grown(filled).map_err(to_de)?;
                }
                let written = buf.copy_at(filled, &[byte]);
                byte.zeroize();
                written.map_err(to_de)?;
                filled += 1;
            }
            buf.finish(filled).map_err(to_de)
        }
    }

    /// Reads a secret into guarded memory: from a string (its UTF-8 bytes),
    /// a byte string, or a sequence of integers 0–255. The buffer is frozen
    /// (read-only). An empty value is an error.
    ///
    /// What is wiped: an owned `String` or `Vec<u8>` the deserializer hands
    /// over (with its whole capacity), and each element of a sequence. What
    /// is not: a borrowed `&str` or `&[u8]` points into the caller's input
    /// (the file contents you read, say): wipe that yourself, for instance
    /// by reading the file into a [`LockedBuffer`] with
    /// [`from_entire_reader`](LockedBuffer::from_entire_reader) and
    /// deserializing from its bytes. Copies a deserializer makes internally
    /// (`serde_json` unescapes strings that contain escapes into a scratch
    /// `Vec`; a TOML parser builds the whole document before handing out
    /// values) are the deserializer's and are not wiped.
    ///
    /// There is deliberately no `Serialize`: a secret should not leave
    /// guarded memory by accident.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use memguard::LockedBuffer;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Config {
    ///     user: String,
    ///     password: LockedBuffer,
    ///     key: LockedBuffer,
    /// }
    ///
    /// let config: Config = serde_json::from_str(
    ///     r#"{ "user": "ada", "password": "hunter2", "key": [1, 2, 3] }"#,
    /// )?;
    /// assert_eq!(config.user, "ada");
    /// assert_eq!(&*config.password.as_str()?, "hunter2");
    /// assert!(config.key.equal_to(&[1, 2, 3]));
    /// # Ok(())
    /// # }
    /// ```
    impl<'de> Deserialize<'de> for LockedBuffer {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            // Self-describing formats (JSON, TOML, YAML) say what they hold;
            // binary ones (bincode, postcard) are asked for bytes.
            if deserializer.is_human_readable() {
                deserializer.deserialize_any(BufferVisitor)
            } else {
                deserializer.deserialize_bytes(BufferVisitor)
            }
        }
    }

    /// Reads a secret as a [`LockedBuffer`] does, then seals it; the
    /// plaintext buffer is destroyed.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sealed: memguard::Enclave = serde_json::from_str(r#""api-token""#)?;
    /// assert!(sealed.open()?.equal_to(b"api-token"));
    /// # Ok(())
    /// # }
    /// ```
    impl<'de> Deserialize<'de> for Enclave {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            LockedBuffer::deserialize(deserializer)?
                .seal()
                .map_err(de::Error::custom)
        }
    }
}

#[cfg(feature = "secrecy")]
mod secrecy_impl {
    use crate::Ref;

    /// Hands a guard to code written against `secrecy`: a function taking
    /// `impl ExposeSecret<[u8]>` (or `<str>`) can take `buf.try_bytes()?`
    /// (or `buf.as_str()?`).
    ///
    /// Why the guard and not the buffer: `expose_secret(&self) -> &S` returns
    /// a bare reference, and a [`purge`](crate::purge) on another thread may
    /// destroy a [`LockedBuffer`](crate::LockedBuffer) at any moment; only a
    /// [`Ref`] keeps the memory mapped and unwiped while the reference lives.
    ///
    /// ```
    /// use secrecy::ExposeSecret;
    ///
    /// fn authenticate(token: &impl ExposeSecret<str>) -> bool {
    ///     token.expose_secret().starts_with("tok-")
    /// }
    ///
    /// let token = memguard::LockedBuffer::from_string("tok-123".to_owned())?;
    /// assert!(authenticate(&token.as_str()?));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    impl<T: ?Sized> secrecy::ExposeSecret<T> for Ref<'_, T> {
        fn expose_secret(&self) -> &T {
            self
        }
    }
}
