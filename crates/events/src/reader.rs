//! Reading events files back: line by line, with errors that name the file and line.
//!
//! The reader is streaming (memory does not grow with the file) and does not stop at a bad line:
//! each line yields its own `Result`, so a consumer can skip and count malformed lines as the
//! analyzer must. The header is checked up front because a file of another schema version would
//! otherwise be misread silently.

use crate::{Event, EventKind, Header, SCHEMA_NAME, SCHEMA_VERSION};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A problem with an events file, located by path and 1-based line number.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot open events file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: cannot read: {source}")]
    Io {
        path: PathBuf,
        line: u64,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a linecut event: {message}")]
    Malformed {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}:1: {message}")]
    BadHeader { path: PathBuf, message: String },
}

/// Opens an events file and checks its header.
pub fn read_events(path: &Path) -> Result<EventReader<BufReader<File>>, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    EventReader::new(path, BufReader::new(file))
}

/// Iterator over the events of one file (the header is available separately).
pub struct EventReader<R> {
    path: PathBuf,
    input: R,
    line_no: u64,
    line: String,
    header: Header,
}

impl<R: BufRead> EventReader<R> {
    /// Reads and validates the header line; `path` is used only to label errors.
    pub fn new(path: &Path, input: R) -> Result<Self, ReadError> {
        let mut reader = EventReader {
            path: path.to_path_buf(),
            input,
            line_no: 0,
            line: String::new(),
            header: Header::new("", ""),
        };
        let bad = |message: String| ReadError::BadHeader {
            path: path.to_path_buf(),
            message,
        };
        let first = match reader.next() {
            None => return Err(bad("file is empty; expected a header line".into())),
            Some(Err(e)) => return Err(e),
            Some(Ok(ev)) => ev,
        };
        let EventKind::Header(header) = first.kind else {
            return Err(bad(format!(
                "first line is a `{}` event; expected `header`",
                first.kind.type_name()
            )));
        };
        if header.schema != SCHEMA_NAME {
            return Err(bad(format!(
                "schema is `{}`; expected `{SCHEMA_NAME}`",
                header.schema
            )));
        }
        if header.schema_version != SCHEMA_VERSION {
            return Err(bad(format!(
                "schema version {} is not supported (this build reads version {SCHEMA_VERSION})",
                header.schema_version
            )));
        }
        reader.header = header;
        Ok(reader)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// 1-based number of the line most recently returned.
    pub fn line_number(&self) -> u64 {
        self.line_no
    }
}

impl<R: BufRead> Iterator for EventReader<R> {
    type Item = Result<Event, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            self.line_no += 1;
            match self.input.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(ReadError::Io {
                        path: self.path.clone(),
                        line: self.line_no,
                        source,
                    }))
                }
            }
            let text = self.line.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str::<Event>(text).map_err(|e| ReadError::Malformed {
                    path: self.path.clone(),
                    line: self.line_no,
                    message: e.to_string(),
                }),
            );
        }
    }
}
