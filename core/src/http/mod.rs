//! HTTP/1.1 framing: request heads, request bodies, response heads. No OCI knowledge here.

pub mod body;
pub mod head;
pub mod percent;
pub mod response;
