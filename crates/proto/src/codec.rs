//! The codec every generated client and server uses: prost's, with smaller per-call buffers.
//!
//! tonic allocates `buffer_size` up front for every call (request decoding, response
//! encoding) and keeps it for the call's life. Its default, 8 KiB, is what an idle Subscribe
//! stream then costs the server just to be able to encode its next item, times tens of
//! thousands of streams. Echo's messages are small (a message event is a few hundred bytes,
//! a stream item rarely over 2 KiB), so calls start with 1 KiB and the buffer grows when an item
//! is larger (docs/BENCHMARKS.md, connections).

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Bytes each call's encode and decode buffers start with.
pub const CALL_BUFFER_BYTES: usize = 1024;

/// How many encoded bytes a streaming response gathers before handing them to HTTP/2
/// (tonic's default: items that are ready at once go out in one write).
const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(CALL_BUFFER_BYTES, YIELD_THRESHOLD_BYTES)
}

/// [`ProstCodec`] with [`CALL_BUFFER_BYTES`] buffers.
#[derive(Debug, Clone)]
pub struct LeanCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
