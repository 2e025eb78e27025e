//! Request body framing: Content-Length and chunked transfer coding (RFC 9112 §7.1),
//! decoded in place. The decoder never copies: it says which bytes of the input are
//! framing and which are data, so upload data leaves as slices of the receive buffer.

/// Longest chunk-size line (size, extensions) and longest trailer section we accept.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// A body that cannot be decoded: answered 400, and the connection closes (its framing is
/// lost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyError(pub &'static str);

/// Result of one decoding step over the unread input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// More bytes needed; nothing consumed.
    NeedMore,
    /// `n` bytes of framing consumed; no data.
    Framing(usize),
    /// The next `n` input bytes are body data. The caller consumes them when it is done with
    /// them by calling `consumed_data(n)`.
    Data(usize),
    /// `n` bytes of framing consumed and the body is complete.
    End(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a chunk size.
    Size {
        value: u64,
        digits: u8,
        line: usize,
    },
    /// After the size: extensions up to the line end.
    Ext {
        value: u64,
        line: usize,
    },
    /// Saw '\r' ending the size line.
    SizeLf {
        value: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart {
        total: usize,
    },
    /// Inside a trailer field line.
    Trailer {
        total: usize,
    },
    /// Saw '\r' ending a trailer line.
    TrailerLf {
        total: usize,
        empty: bool,
    },
    /// The final empty line was read.
    Done,
}

/// Decoder state of one request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyDecoder {
    Length { left: u64 },
    Chunked(ChunkedState),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkedState(Chunk);

impl BodyDecoder {
    pub fn length(n: u64) -> BodyDecoder {
        BodyDecoder::Length { left: n }
    }

    pub fn chunked() -> BodyDecoder {
        BodyDecoder::Chunked(ChunkedState(Chunk::Size {
            value: 0,
            digits: 0,
            line: 0,
        }))
    }

    /// Data bytes still expected, when the framing says so.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length { left } => Some(*left),
            BodyDecoder::Chunked(_) => None,
        }
    }

    /// Data bytes the framing has announced and not yet delivered: the rest of a
    /// Content-Length body, or of the current chunk. A gathered body whose next chunk
    /// cannot fit is refused when its size line arrives, not after waiting for its bytes.
    pub fn announced(&self) -> u64 {
        match self {
            BodyDecoder::Length { left } => *left,
            BodyDecoder::Chunked(ChunkedState(Chunk::Data { left })) => *left,
            BodyDecoder::Chunked(_) => 0,
        }
    }

    /// Decodes from `input` (the unread bytes). Data steps must be acknowledged with
    /// `consumed_data` before the next call.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, BodyError> {
        match self {
            BodyDecoder::Length { left } => {
                if *left == 0 {
                    return Ok(Step::End(0));
                }
                if input.is_empty() {
                    return Ok(Step::NeedMore);
                }
                Ok(Step::Data(clamp(*left, input.len())))
            }
            BodyDecoder::Chunked(ChunkedState(st)) => step_chunked(st, input),
        }
    }

    /// Marks `n` data bytes (at most what the last `Data` step offered) as consumed.
    pub fn consumed_data(&mut self, n: usize) {
        match self {
            BodyDecoder::Length { left } => *left -= n as u64,
            BodyDecoder::Chunked(ChunkedState(st)) => {
                if let Chunk::Data { left } = st {
                    *left -= n as u64;
                    if *left == 0 {
                        *st = Chunk::DataCr;
                    }
                }
            }
        }
    }
}

fn clamp(left: u64, avail: usize) -> usize {
    usize::try_from(left).map_or(avail, |l| l.min(avail))
}

fn step_chunked(st: &mut Chunk, input: &[u8]) -> Result<Step, BodyError> {
    if let Chunk::Data { left } = *st {
        if input.is_empty() {
            return Ok(Step::NeedMore);
        }
        return Ok(Step::Data(clamp(left, input.len())));
    }
    if *st == Chunk::Done {
        return Ok(Step::End(0));
    }
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        i += 1;
        *st = match *st {
            Chunk::Size {
                value,
                digits,
                line,
            } => match char::from(b).to_digit(16) {
                Some(d) => {
                    if digits >= 15 {
                        return Err(BodyError("chunk size too large"));
                    }
                    Chunk::Size {
                        value: value * 16 + u64::from(d),
                        digits: digits + 1,
                        line: line + 1,
                    }
                }
                None if digits == 0 => return Err(BodyError("chunk size missing")),
                None if b == b'\r' => Chunk::SizeLf { value },
                None if b == b';' || b == b' ' || b == b'\t' => Chunk::Ext {
                    value,
                    line: line + 1,
                },
                None => return Err(BodyError("bad chunk size")),
            },
            Chunk::Ext { value, line } => {
                if line >= MAX_CHUNK_LINE {
                    return Err(BodyError("chunk extension too long"));
                }
                match b {
                    b'\r' => Chunk::SizeLf { value },
                    b'\n' => return Err(BodyError("bare LF in chunk line")),
                    _ => Chunk::Ext {
                        value,
                        line: line + 1,
                    },
                }
            }
            Chunk::SizeLf { value } => {
                if b != b'\n' {
                    return Err(BodyError("chunk size line not ended by CRLF"));
                }
                if value == 0 {
                    Chunk::TrailerStart { total: 0 }
                } else {
                    *st = Chunk::Data { left: value };
                    return Ok(Step::Framing(i));
                }
            }
            // Both return before the loop and the loop returns on entering them.
            Chunk::Data { .. } | Chunk::Done => {
                i -= 1;
                break;
            }
            Chunk::DataCr => {
                if b != b'\r' {
                    return Err(BodyError("chunk data not followed by CRLF"));
                }
                Chunk::DataLf
            }
            Chunk::DataLf => {
                if b != b'\n' {
                    return Err(BodyError("chunk data not followed by CRLF"));
                }
                Chunk::Size {
                    value: 0,
                    digits: 0,
                    line: 0,
                }
            }
            Chunk::TrailerStart { total } => match b {
                b'\r' => Chunk::TrailerLf { total, empty: true },
                _ => Chunk::Trailer { total: total + 1 },
            },
            Chunk::Trailer { total } => {
                if total >= MAX_TRAILERS {
                    return Err(BodyError("trailers too long"));
                }
                match b {
                    b'\r' => Chunk::TrailerLf {
                        total,
                        empty: false,
                    },
                    _ => Chunk::Trailer { total: total + 1 },
                }
            }
            Chunk::TrailerLf { total, empty } => {
                if b != b'\n' {
                    return Err(BodyError("trailer line not ended by CRLF"));
                }
                if empty {
                    *st = Chunk::Done;
                    return Ok(Step::End(i));
                }
                Chunk::TrailerStart { total: total + 2 }
            }
        };
    }
    Ok(if i == 0 {
        Step::NeedMore
    } else {
        Step::Framing(i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` delivered in pieces of `k` bytes; returns the data and framing total.
    fn decode(wire: &[u8], k: usize) -> Result<(Vec<u8>, usize), BodyError> {
        let mut d = BodyDecoder::chunked();
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut out = Vec::new();
        loop {
            match d.step(&buf)? {
                Step::NeedMore => {
                    if fed >= wire.len() {
                        return Err(BodyError("eof"));
                    }
                    let n = k.min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
                Step::Framing(n) => {
                    buf.drain(..n);
                }
                Step::Data(n) => {
                    out.extend_from_slice(&buf[..n]);
                    buf.drain(..n);
                    d.consumed_data(n);
                }
                Step::End(n) => {
                    buf.drain(..n);
                    return Ok((out, fed - buf.len()));
                }
            }
        }
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers_decodes_at_every_piece_size() {
        let wire = b"5;name=val\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";
        for k in 1..=wire.len() {
            let (data, used) = decode(wire, k).unwrap();
            assert_eq!(data, b"hello0123456789", "k={k}");
            assert_eq!(used, wire.len(), "k={k}");
        }
    }

    #[test]
    fn chunked_body_stops_exactly_at_its_end() {
        let wire = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let mut d = BodyDecoder::chunked();
        let mut off = 0;
        loop {
            match d.step(&wire[off..]).unwrap() {
                Step::Framing(n) => off += n,
                Step::Data(n) => {
                    d.consumed_data(n);
                    off += n
                }
                Step::End(n) => {
                    off += n;
                    break;
                }
                Step::NeedMore => panic!("complete body"),
            }
        }
        assert_eq!(&wire[off..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn malformed_chunk_framing_is_an_error() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello",
            b"3\r\nabcX",
            b"ffffffffffffffffff\r\n",
            b"0\r\nbad\rX",
        ] {
            assert!(
                decode(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn length_body_offers_at_most_the_declared_bytes() {
        let mut d = BodyDecoder::length(3);
        assert_eq!(d.step(b"abcdef").unwrap(), Step::Data(3));
        d.consumed_data(3);
        assert_eq!(d.step(b"def").unwrap(), Step::End(0));
    }
}
