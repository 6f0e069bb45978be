//! The gRPC codec of every kpr service: prost's, except that a request that does not
//! decode as its message (invalid UTF-8 in a string, truncated bytes, a nesting bomb)
//! is the caller's error, `INVALID_ARGUMENT`, where tonic's prost codec answers
//! `INTERNAL` and so blames the server.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstCodec;

/// The codec the generated services use (`codec_path` in build.rs).
#[derive(Debug, Clone)]
pub struct KprCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for KprCodec<T, U> {
    fn default() -> Self {
        KprCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for KprCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = KprDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        KprDecoder { _pd: PhantomData }
    }
}

/// Decodes `U`; a message that does not decode is `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct KprDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default> Decoder for KprDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            Status::invalid_argument(format!("the request is not a valid protobuf message: {e}"))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
