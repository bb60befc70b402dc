//! Framing: each message travels as a `u32` big-endian length followed by that many bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::WireError;

/// Appends one frame to `out`: a `u32` length, then whatever `body` writes.
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// let mut out = BytesMut::new();
/// broker_wire::encode_frame(&mut out, |b| b.put_slice(b"hi")).unwrap();
/// assert_eq!(&out[..], b"\0\0\0\x02hi");
/// ```
pub fn encode_frame(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) -> Result<(), WireError> {
    let start = out.len();
    out.put_u32(0);
    body(out);
    let len = out.len() - start - 4;
    let Ok(len32) = u32::try_from(len) else {
        out.truncate(start);
        return Err(WireError::TooLarge("frame"));
    };
    out[start..start + 4].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

/// The most a decoder reserves ahead of the bytes that have arrived.
const MAX_RESERVE: usize = 64 * 1024;

/// Splits length-prefixed frames off a growing buffer, refusing frames over a size limit
/// before buffering them.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_len: usize,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder { max_frame_len }
    }

    /// The next complete frame body, if `buf` holds one; it is removed from `buf`.
    ///
    /// Call again until it returns `Ok(None)`, then read more bytes into `buf`. An oversized
    /// length is an error as soon as its four bytes arrive; the caller should drop the
    /// connection, since the stream cannot be resynchronized.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// let mut dec = broker_wire::FrameDecoder::new(16);
    /// let mut buf = BytesMut::from(&b"\0\0\0\x02hi\0\0"[..]);
    /// assert_eq!(&dec.decode(&mut buf).unwrap().unwrap()[..], b"hi");
    /// assert_eq!(dec.decode(&mut buf).unwrap(), None);
    /// let mut big = BytesMut::from(&b"\0\0\x01\0"[..]);
    /// assert!(dec.decode(&mut big).is_err());
    /// ```
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, WireError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > self.max_frame_len {
            return Err(WireError::FrameTooLarge {
                length: len as u64,
                max: self.max_frame_len,
            });
        }
        if buf.len() < 4 + len {
            // Room for what is missing, but never more than a read's worth at a time: a
            // declared length is only a claim, and memory grows with the bytes that arrive.
            buf.reserve((4 + len - buf.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(crate::Limits::default().max_frame_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_reserves_no_more_than_a_read_ahead() {
        let mut dec = FrameDecoder::new(16 << 20);
        // A header announcing 16 MiB, and a little of the body.
        let mut buf = BytesMut::new();
        buf.put_u32(16 << 20);
        buf.put_slice(&[7; 1000]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert!(
            buf.capacity() <= 4 + 1000 + MAX_RESERVE,
            "reserved {} bytes for 1,004 that arrived",
            buf.capacity()
        );
        // The frame still arrives whole as its bytes come in.
        let mut rest = vec![7u8; (16 << 20) - 1000];
        while !rest.is_empty() {
            let n = rest.len().min(100_000);
            buf.put_slice(&rest[..n]);
            rest.drain(..n);
            if !rest.is_empty() {
                assert_eq!(dec.decode(&mut buf).unwrap(), None);
            }
        }
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap().len(), 16 << 20);
    }
}
