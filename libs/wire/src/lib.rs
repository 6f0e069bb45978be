//! The wire: protobuf messages and gRPC stubs generated from `proto/kpr/v1`, the
//! conversions between them and the domain types, and the codec of stored events.
//!
//! **API boundary:** this is the only crate that knows protobuf. Generated types never
//! travel past a service handler; domain types never derive prost or serde.

pub mod codec;
pub mod grpc_codec;
pub mod submit;

/// Generated code of package `kpr.v1`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
pub mod pb {
    tonic::include_proto!("kpr.v1");
}

/// The encoded file descriptor set of every kpr proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kpr_descriptor.bin"));

pub use codec::{DecodeError, StoredMeta, decode_stored, encode_stored};
pub use submit::decode_submitted;
