//! Every Echo RPC takes exactly one request message (unary and server-streaming alike: there
//! is no client-streaming RPC in `proto/echo`), and a body that carries more is refused.
//!
//! tonic reads a unary request's first message, then drains the rest of the body and drops
//! whatever it finds, so a second message (or a length prefix shorter than its message, whose
//! remainder reads as a next frame) was served as if only the first had been sent. grpc-go
//! and grpc-java refuse such a body; so does Echo now: this layer follows the body's gRPC
//! framing (a 5-byte header, then the length it names) and, once the first frame is whole,
//! ends the body with INVALID_ARGUMENT at the first byte of another. The handler never runs:
//! tonic fails the request while draining, before it is dispatched. Only paths under `/echo.`
//! are checked; gRPC reflection is bidirectional streaming and health is tonic's own.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::Failure;

/// A boxed body error, as tonic takes it.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct OneMessageLayer;

impl<S> Layer<S> for OneMessageLayer {
    type Service = OneMessage<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OneMessage { inner }
    }
}

/// See [`OneMessageLayer`].
#[derive(Clone, Debug)]
pub struct OneMessage<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for OneMessage<S>
where
    S: Service<Request<OneMessageBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let checked = request.uri().path().starts_with("/echo.");
        self.inner
            .call(request.map(|body| OneMessageBody::new(body, checked)))
    }
}

pin_project! {
    /// A request body that ends with INVALID_ARGUMENT where a second gRPC frame would begin.
    pub struct OneMessageBody<B> {
        #[pin]
        inner: B,
        framing: Framing,
        // The refusal, sent after the bytes of the first frame that shared its chunk.
        refusal: Option<tonic::Status>,
    }
}

impl<B> OneMessageBody<B> {
    fn new(inner: B, checked: bool) -> Self {
        Self {
            inner,
            framing: if checked {
                Framing::Header(Vec::with_capacity(5))
            } else {
                Framing::Unchecked
            },
            refusal: None,
        }
    }
}

/// Where in the body's framing the bytes seen so far end.
#[derive(Debug)]
enum Framing {
    /// Not an Echo RPC: every byte passes.
    Unchecked,
    /// Inside the first frame's 5-byte header (the bytes of it seen so far).
    Header(Vec<u8>),
    /// Inside the first frame's message, this many bytes before its end.
    Message(u64),
    /// The first frame is whole: any further byte is a second message.
    Done,
}

impl Framing {
    /// Follows `chunk`; returns how many of its bytes belong to the first frame (all of them
    /// unless the chunk reaches past it).
    fn follow(&mut self, chunk: &[u8]) -> usize {
        let mut used = 0;
        while used < chunk.len() {
            match self {
                Framing::Unchecked => return chunk.len(),
                Framing::Header(header) => {
                    let take = (5 - header.len()).min(chunk.len() - used);
                    header.extend_from_slice(&chunk[used..used + take]);
                    used += take;
                    if header.len() == 5 {
                        let length =
                            u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
                        *self = if length == 0 {
                            Framing::Done
                        } else {
                            Framing::Message(u64::from(length))
                        };
                    }
                }
                Framing::Message(left) => {
                    let take = (*left).min((chunk.len() - used) as u64);
                    *left -= take;
                    used += take as usize;
                    if *left == 0 {
                        *self = Framing::Done;
                    }
                }
                Framing::Done => return used,
            }
        }
        used
    }
}

/// The answer to a body with a second message.
fn refusal() -> tonic::Status {
    Failure::invalid(
        "",
        "the request body holds more than one gRPC message; this method takes exactly one",
    )
    .into()
}

impl<B> Body for OneMessageBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Some(refusal) = this.refusal.take() {
            return Poll::Ready(Some(Err(Box::new(refusal))));
        }
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        let used = this.framing.follow(&data);
        if used == data.len() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        let refused = refusal();
        let request_id = crate::request_id::current().unwrap_or_default();
        tracing::debug!(%request_id, "request body with more than one gRPC message");
        if used == 0 {
            return Poll::Ready(Some(Err(Box::new(refused))));
        }
        *this.refusal = Some(refused);
        Poll::Ready(Some(Ok(Frame::data(data.split_to(used)))))
    }

    fn is_end_stream(&self) -> bool {
        self.refusal.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// How many bytes of each chunk, in turn, belong to the first frame.
    fn follow(chunks: &[&[u8]]) -> Vec<usize> {
        let mut framing = Framing::Header(Vec::new());
        chunks.iter().map(|chunk| framing.follow(chunk)).collect()
    }

    #[test]
    fn one_frame_passes_whole_however_it_is_cut() {
        let body = frame(b"hello");
        assert_eq!(follow(&[&body]), vec![10]);
        for cut in 1..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(follow(&[a, b]), vec![a.len(), b.len()], "cut at {cut}");
        }
        assert_eq!(follow(&[&frame(b"")]), vec![5]);
    }

    #[test]
    fn a_second_frame_is_found_in_the_same_chunk_or_the_next() {
        let mut two = frame(b"hello");
        two.extend(frame(b"again"));
        assert_eq!(follow(&[&two]), vec![10]);
        let first = frame(b"hello");
        assert_eq!(follow(&[&first, &frame(b"again")]), vec![10, 0]);
        // An empty first message: the next byte is already a second frame.
        assert_eq!(follow(&[&frame(b""), &[0]]), vec![5, 0]);
        // A short prefix: the remainder reads as the start of another frame.
        let mut short = frame(b"hello");
        short[4] = 2;
        assert_eq!(follow(&[&short]), vec![7]);
    }

    #[test]
    fn other_paths_are_not_followed() {
        let mut framing = Framing::Unchecked;
        let mut two = frame(b"hello");
        two.extend(frame(b"again"));
        assert_eq!(framing.follow(&two), two.len());
    }
}
