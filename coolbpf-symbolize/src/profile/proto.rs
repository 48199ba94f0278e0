//! A minimal protocol-buffers writer: varints and length-delimited fields, enough for
//! profile.proto. Scalars equal to zero are omitted, as proto3 does.

/// Wire type of varint fields.
const VARINT: u8 = 0;
/// Wire type of length-delimited fields (strings, messages, packed repeated scalars).
const LEN: u8 = 2;

/// Encodes one message into a byte buffer.
#[derive(Debug, Default)]
pub(super) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty message.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The encoded bytes.
    pub(super) fn finish(self) -> Vec<u8> {
        self.buf
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    /// A `uint64` field, omitted when zero.
    pub(super) fn uint64(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.key(field, VARINT);
            self.varint(value);
        }
    }

    /// An `int64` field (two's complement, as protobuf encodes it), omitted when zero.
    pub(super) fn int64(&mut self, field: u32, value: i64) {
        self.uint64(field, value as u64);
    }

    /// A `bool` field, omitted when false.
    pub(super) fn bool(&mut self, field: u32, value: bool) {
        self.uint64(field, u64::from(value));
    }

    /// A length-delimited field, always written (an element of a repeated field, such as
    /// the empty string at the start of a string table, must not be dropped).
    pub(super) fn bytes(&mut self, field: u32, data: &[u8]) {
        self.key(field, LEN);
        self.varint(data.len() as u64);
        self.buf.extend_from_slice(data);
    }

    /// A packed repeated varint field, omitted when empty.
    pub(super) fn packed(&mut self, field: u32, values: impl IntoIterator<Item = u64>) {
        let mut inner = Self::new();
        for value in values {
            inner.varint(value);
        }
        if !inner.buf.is_empty() {
            self.bytes(field, &inner.buf);
        }
    }

    /// A nested message, built by `build`.
    pub(super) fn message(&mut self, field: u32, build: impl FnOnce(&mut Self)) {
        let mut inner = Self::new();
        build(&mut inner);
        self.bytes(field, &inner.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::Writer;

    #[test]
    fn encodes_as_protobuf_does() {
        let mut w = Writer::new();
        w.uint64(1, 150);
        w.uint64(2, 0);
        w.int64(3, -1);
        w.bytes(4, b"");
        w.packed(5, [3, 270]);
        w.message(6, |m| m.bool(1, true));
        let expected: &[u8] = &[
            0x08, 0x96, 0x01, // 1: 150
            0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // 3: -1
            0x22, 0x00, // 4: ""
            0x2a, 0x03, 0x03, 0x8e, 0x02, // 5: [3, 270]
            0x32, 0x02, 0x08, 0x01, // 6: {1: true}
        ];
        assert_eq!(w.finish(), expected);
    }
}
