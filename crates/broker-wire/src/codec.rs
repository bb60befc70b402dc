//! A tokio-util codec for length-prefixed frames (feature `codec`).

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{FrameDecoder, WireError};

/// Errors of [`FrameCodec`]: the transport's or the format's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Reading or writing the stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bytes were not a valid frame.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Splits a byte stream into frame bodies and writes frame bodies with their length prefix.
///
/// Pair it with [`Envelope::decode`](crate::Envelope::decode) and
/// [`Handshake::decode`](crate::Handshake::decode) for the content.
#[derive(Debug, Clone, Default)]
pub struct FrameCodec {
    decoder: FrameDecoder,
}

impl FrameCodec {
    /// A codec accepting frames of at most `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        FrameCodec {
            decoder: FrameDecoder::new(max_frame_len),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = CodecError;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = CodecError;
    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        crate::encode_frame(dst, |b| b.extend_from_slice(&body))?;
        Ok(())
    }
}

impl Encoder<&crate::Envelope> for FrameCodec {
    type Error = CodecError;
    fn encode(&mut self, env: &crate::Envelope, dst: &mut BytesMut) -> Result<(), CodecError> {
        crate::encode_frame(dst, |b| env.encode(b))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limit() {
        let mut codec = FrameCodec::new(8);
        let mut buf = BytesMut::new();
        codec.encode(Bytes::from_static(b"abc"), &mut buf).unwrap();
        codec.encode(Bytes::from_static(b""), &mut buf).unwrap();
        assert_eq!(
            codec.decode(&mut buf).unwrap().unwrap(),
            Bytes::from_static(b"abc")
        );
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), Bytes::new());
        assert!(codec.decode(&mut buf).unwrap().is_none());
        let mut big = BytesMut::from(&[0, 0, 0, 9][..]);
        assert!(matches!(
            codec.decode(&mut big),
            Err(CodecError::Wire(WireError::FrameTooLarge { .. }))
        ));
    }
}
