//! The one HTTP/1.1 client of this workspace: the `berth` admin commands, the server's
//! integration tests, the end-to-end tests and the load generator all talk to a server
//! through it, so a response is read (framed, bounded, refused when malformed) in one place.
//! The server itself answers with berth-core and never uses it.
//!
//! Blocking, `http://` only, one connection per [`HttpConn`]: kept alive between requests
//! and reopened when the server closes it ([`Options::reconnect`]), or held as one socket a
//! test writes raw bytes to. Request bodies go out as slices, so a large blob is written
//! straight from its buffer; response bodies are kept, counted and dropped ([`Sink`]), or
//! read as they arrive ([`HttpConn::stream`]). [`oci`] pushes blobs and manifests with it.

mod conn;
mod error;
pub mod oci;
mod reader;
mod response;

pub use conn::{HttpConn, Options, Streaming};
pub use error::Error;
pub use reader::{read_response, Framing, Head, Reader};
pub use response::{Response, Sink};
