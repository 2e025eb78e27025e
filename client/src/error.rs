//! Why an exchange got no response, worded for the person who reads it: the admin CLI puts
//! these messages into its own sentences.

use std::borrow::Cow;
use std::{fmt, io};

#[derive(Debug)]
pub enum Error {
    /// Nothing accepted the connection: no server there, or not reachable.
    Connect(io::Error),
    /// The connection broke or timed out mid-exchange.
    Io(io::Error),
    /// The server closed the connection before the first byte of an answer (a kept-alive
    /// connection it had closed while idle, or a server that refused to answer).
    Closed,
    /// The answer is not HTTP/1.x as this client reads it, or larger than it accepts.
    Malformed(Cow<'static, str>),
}

impl Error {
    pub(crate) fn malformed(why: impl Into<Cow<'static, str>>) -> Error {
        Error::Malformed(why.into())
    }

    /// Whether a request met a kept-alive connection the server had closed while idle, so
    /// sending it again on a new connection is what every client does.
    pub(crate) fn stale_connection(&self) -> bool {
        match self {
            Error::Closed => true,
            Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(e) | Error::Io(e) => write!(f, "{e}"),
            Error::Closed => f.write_str("the server closed the connection without answering"),
            Error::Malformed(why) => write!(f, "the answer is not a valid HTTP response ({why})"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
