//! The protobuf wire format: tags, varints, fixed-width and length-delimited values, read
//! from borrowed bytes without copying. Written here rather than taken from prost, whose
//! wire-level functions are not a public API and which decodes into typed structs only.

use super::DecodeError;

/// A field's value as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    /// The wire type number, for messages.
    pub(super) fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => 0,
            WireValue::Fixed64(_) => 1,
            WireValue::Bytes(_) => 2,
            WireValue::Fixed32(_) => 5,
        }
    }
}

/// Reads the fields of one message.
pub(super) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// The next `(tag, value)`, or `None` at the end.
    pub(super) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, DecodeError> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire_type = (key & 7) as u8;
        let tag = key >> 3;
        if tag == 0 || tag > u64::from(u32::MAX >> 3) {
            return Err(DecodeError::Malformed(format!(
                "proto: illegal tag {tag} (wire type {wire_type})"
            )));
        }
        let value = match wire_type {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(
                self.take(8)?
                    .try_into()
                    .map_err(|_| DecodeError::Malformed("unexpected EOF".into()))?,
            )),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len)
                    .map_err(|_| DecodeError::Malformed("proto: invalid length".into()))?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(
                self.take(4)?
                    .try_into()
                    .map_err(|_| DecodeError::Malformed("unexpected EOF".into()))?,
            )),
            other => {
                return Err(DecodeError::Malformed(format!(
                    "proto: illegal wireType {other}"
                )))
            }
        };
        Ok(Some((tag as u32, value)))
    }

    /// A base-128 varint of at most 10 bytes.
    pub(super) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let (&byte, rest) = self
                .data
                .split_first()
                .ok_or_else(|| DecodeError::Malformed("unexpected EOF".into()))?;
            self.data = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed("proto: integer overflow".into()))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.data.len() {
            return Err(DecodeError::Malformed("unexpected EOF".into()));
        }
        let (taken, rest) = self.data.split_at(len);
        self.data = rest;
        Ok(taken)
    }

    /// Whether every byte has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_wire_type() {
        let data = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 2, b'h', b'i', // 3: "hi"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        let mut reader = Reader::new(&data);
        assert_eq!(
            reader.next_field().unwrap(),
            Some((1, WireValue::Varint(150)))
        );
        assert_eq!(
            reader.next_field().unwrap(),
            Some((2, WireValue::Fixed64(1)))
        );
        assert_eq!(
            reader.next_field().unwrap(),
            Some((3, WireValue::Bytes(b"hi")))
        );
        assert_eq!(
            reader.next_field().unwrap(),
            Some((4, WireValue::Fixed32(2)))
        );
        assert_eq!(reader.next_field().unwrap(), None);
    }

    #[test]
    fn rejects_truncation_and_bad_keys() {
        for data in [
            &[0x0a, 5, b'a'][..],
            &[0x08][..],
            &[0x08, 0x80][..],
            &[0x00, 1][..],
            &[0x0b][..],
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ][..],
        ] {
            assert!(Reader::new(data).next_field().is_err(), "{data:?}");
        }
    }
}
