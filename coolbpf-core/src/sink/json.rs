//! [`JsonLinesSink`]: one JSON record per line (the `coolbpf --json` output).

use std::fs::File;
use std::io::{self, BufWriter, Stdout, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::record::Record;
use crate::sink::Sink;

/// Writes each record as [`Record::to_json`] followed by a newline.
///
/// Output is whatever `W` buffers; [`Sink::flush`] flushes it, which the runtime does after
/// every collected batch and whenever it has caught up.
#[derive(Debug)]
pub struct JsonLinesSink<W: Write> {
    out: W,
    /// Where the lines go, for error messages.
    target: String,
}

impl JsonLinesSink<BufWriter<Stdout>> {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        Self {
            out: BufWriter::new(io::stdout()),
            target: "stdout".into(),
        }
    }
}

impl JsonLinesSink<BufWriter<File>> {
    /// Writes to the file at `path`, created or truncated.
    pub fn file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::create(path)
            .map_err(|err| Error::io(format!("create {}", path.display()), err))?;
        Ok(Self {
            out: BufWriter::new(file),
            target: path.display().to_string(),
        })
    }
}

impl<W: Write> JsonLinesSink<W> {
    /// Writes to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            out: writer,
            target: "writer".into(),
        }
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Gives back the underlying writer (not flushed: call [`Sink::flush`] first).
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> Sink for JsonLinesSink<W> {
    fn write(&mut self, record: &Record) -> Result<()> {
        // Serializing straight into the writer avoids a String per record.
        serde_json::to_writer(&mut self.out, record)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|err| Error::io(format!("write JSON line to {}", self.target), err))
    }

    fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|err| Error::io(format!("flush {}", self.target), err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Event, FieldValue, Metric};

    #[test]
    fn lines_are_to_json_plus_newline() {
        let records: Vec<Record> = vec![
            Metric::counter(
                "syscount",
                "syscalls_total",
                crate::labels! { "pid" => 1 },
                3,
            )
            .into(),
            Event::new("execsnoop", 9)
                .with("comm", FieldValue::Str("sh".into()))
                .into(),
        ];
        let mut sink = JsonLinesSink::new(Vec::new());
        for record in &records {
            sink.write(record).unwrap();
        }
        sink.flush().unwrap();
        let expected: String = records.iter().map(|r| r.to_json() + "\n").collect();
        assert_eq!(String::from_utf8(sink.into_inner()).unwrap(), expected);
    }

    #[test]
    fn file_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.json");
        let err = JsonLinesSink::file(&path).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn file_sink_writes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let mut sink = JsonLinesSink::file(&path).unwrap();
        let record: Record = Metric::gauge("core", "g", crate::labels! {}, 1.5).into();
        sink.write(&record).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            record.to_json() + "\n"
        );
    }
}
