//! A bounds-checked cursor over input bytes.

use bytes::Bytes;

use crate::WireError;

/// Reads primitive values from a byte slice, never past its end.
///
/// When built over a [`Bytes`] buffer, [`Reader::bytes`] returns slices that share that buffer
/// instead of copying.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    shared: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            shared: None,
        }
    }

    pub(crate) fn shared(buf: &'a Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            shared: Some(buf),
        }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize, context: &'static str) -> Result<&'a [u8], WireError> {
        match self.buf.get(self.pos..self.pos.wrapping_add(n)) {
            Some(out) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(out)
            }
            _ => Err(WireError::truncated(context, n, self.remaining())),
        }
    }

    #[inline]
    pub(crate) fn array<const N: usize>(
        &mut self,
        context: &'static str,
    ) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, context)?);
        Ok(out)
    }

    #[inline]
    pub(crate) fn u8(&mut self, context: &'static str) -> Result<u8, WireError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(WireError::truncated(context, 1, 0)),
        }
    }

    #[inline]
    pub(crate) fn u16(&mut self, context: &'static str) -> Result<u16, WireError> {
        self.array(context).map(u16::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u32(&mut self, context: &'static str) -> Result<u32, WireError> {
        self.array(context).map(u32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u64(&mut self, context: &'static str) -> Result<u64, WireError> {
        self.array(context).map(u64::from_be_bytes)
    }

    /// A varint: 7-bit groups, least significant first, high bit set on all but the last.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    #[cold]
    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.u8("varint")?;
            let group = u64::from(b & 0x7f);
            if i == 9 && group > 1 {
                return Err(WireError::VarintOverflow);
            }
            value |= group << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintTooLong)
    }

    /// A varint length of something whose elements take at least `min_element_size` bytes each,
    /// checked against the bytes left so that no allocation can outgrow the input.
    #[inline]
    pub(crate) fn length(
        &mut self,
        context: &'static str,
        min_element_size: usize,
    ) -> Result<usize, WireError> {
        let n = self.varint()?;
        let available = self.remaining();
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_element_size))
            .is_some_and(|bytes| bytes <= available);
        if fits {
            Ok(n as usize)
        } else {
            Err(WireError::LengthBeyondInput {
                context,
                length: n,
                available,
            })
        }
    }

    /// `n` bytes as a shared slice of the input buffer when there is one, else copied.
    #[inline]
    pub(crate) fn bytes(&mut self, n: usize, context: &'static str) -> Result<Bytes, WireError> {
        let start = self.pos;
        let slice = self.take(n, context)?;
        Ok(match self.shared {
            Some(b) => b.slice(start..start + n),
            None => Bytes::copy_from_slice(slice),
        })
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> Bytes {
        let n = self.remaining();
        self.bytes(n, "rest").unwrap_or_default()
    }

    pub(crate) fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }
}

/// Appends a varint (see [`Reader::varint`]).
pub(crate) fn put_varint(out: &mut impl bytes::BufMut, mut value: u64) {
    while value > 0x7f {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// The number of bytes [`put_varint`] writes for `value`.
pub(crate) fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "{v}");
            let mut r = Reader::new(&buf);
            assert_eq!(r.varint().unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
        assert_eq!(
            Reader::new(&[0x80; 11]).varint(),
            Err(WireError::VarintTooLong)
        );
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(Reader::new(&over).varint(), Err(WireError::VarintOverflow));
        assert!(matches!(
            Reader::new(&[0x80]).varint(),
            Err(WireError::Truncated { .. })
        ));
    }
}
